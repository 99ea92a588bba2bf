"""The ``teacher`` prerequisite: the squeeze step (a network trained on the real data).

Recover objectives (CFM, SRe²L) require it, and so do soft-label students.
"""

from methods.registry import PrerequisiteEntry
from methods.teacher.options import TeacherOptions

PREREQUISITE = PrerequisiteEntry("teacher", "methods.teacher.squeeze:Teacher", options=TeacherOptions)
