"""The random baseline's options (torch-free): it reads none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RandomOptions:
    """The random baseline reads no hyper-parameters: its set is the seeded real initialisation."""


__all__ = ["RandomOptions"]
