"""Lazy package attributes (PEP 562), so torch-free submodules can be imported without torch.

A package whose ``__init__`` imported its PyTorch modules eagerly would load torch whenever
any of its submodules is imported, including the torch-free ``options`` modules the sweep
validator reads. Packages instead declare which module each public name comes from.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], extra: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``name`` is imported from ``exports[name]`` on first use."""
    listed = sorted({*exports, *extra})

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
