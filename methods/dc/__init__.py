"""Gradient matching (DC, Zhao, Mopuri & Bilen 2021; with DSA, Zhao & Bilen 2021)."""

from methods.dc.options import DCOptions
from methods.registry import ObjectiveEntry

OBJECTIVE = ObjectiveEntry("dc", "methods.dc.objective:GradientMatching", options=DCOptions)
