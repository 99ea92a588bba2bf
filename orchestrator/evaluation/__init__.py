"""Evaluating synthetic sets: jobs, Ray tasks, ``ddx evaluate``, the full-data reference."""
