"""Trajectory matching (MTT, Cazenavette et al. 2022): the objective, its trajectories and its experts.

Declares the ``tm`` objective and the ``experts`` prerequisite it requires (MTT's ``buffer.py``).
"""

from methods.registry import ObjectiveEntry, PrerequisiteEntry
from methods.tm.options import ExpertOptions, TMOptions

OBJECTIVE = ObjectiveEntry("tm", "methods.tm.objective:TrajectoryMatching", options=TMOptions, requires=("experts",))
EXPERTS = PrerequisiteEntry("experts", "methods.tm.experts:Experts", options=ExpertOptions)
