"""``random``: real images chosen at random, the baseline every table needs."""
