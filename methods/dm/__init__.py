"""Distribution matching (DM, Zhao & Bilen 2023): its options, objective and declaration."""

from methods.dm.options import DMOptions
from methods.registry import ObjectiveEntry

OBJECTIVE = ObjectiveEntry("dm", "methods.dm.objective:DistributionMatching", options=DMOptions)
