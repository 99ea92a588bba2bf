"""The ``teacher`` prerequisite: the squeeze step (a network trained on the real data)."""
