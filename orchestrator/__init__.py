"""ddx's plumbing: CLI, sweep spec, Ray Tune/Train wiring, evaluation fan-out, results, reports.

No math lives here: every computation is a call into :mod:`methods`.
"""

__version__ = "0.1.0"
