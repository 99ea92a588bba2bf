"""UniDD's filter matching: CFM (Bo, Liu & Wang 2025), LFM and any filter of Table 1.

All three recover against the ``teacher`` prerequisite (squeeze → recover → relabel).
"""

from methods.cfm.options import CFMOptions, FilterMatchingOptions, SpectralMatchingOptions
from methods.registry import ObjectiveEntry

_TEACHER = ("teacher",)
CFM = ObjectiveEntry("cfm", "methods.cfm.objective:CFM", options=CFMOptions, requires=_TEACHER)
LFM = ObjectiveEntry("lfm", "methods.cfm.objective:LFM", options=SpectralMatchingOptions, requires=_TEACHER)
FILTER_MATCHING = ObjectiveEntry(
    "filter_matching", "methods.cfm.objective:FilterMatching", options=FilterMatchingOptions, requires=_TEACHER
)
