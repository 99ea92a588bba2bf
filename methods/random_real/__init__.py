"""``random``: real images chosen at random, the baseline every table needs."""

from methods.random_real.options import RandomOptions
from methods.registry import ObjectiveEntry

OBJECTIVE = ObjectiveEntry("random", "methods.random_real.objective:RandomReal", options=RandomOptions)
