"""SRe²L's recover (Yin, Xing & Shen 2023): statistics matching + cross-entropy against a teacher."""

from methods.registry import ObjectiveEntry
from methods.sre2l.options import SRe2LOptions

OBJECTIVE = ObjectiveEntry("sre2l", "methods.sre2l.objective:SRe2L", options=SRe2LOptions, requires=("teacher",))
