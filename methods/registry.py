"""Name → factory registries that back every name a sweep file may use.

The names themselves are listed once, torch-free, in :mod:`methods.catalog`; each
implementation module registers its factory under its name when imported. A registry made
with ``catalog=True`` imports, on a lookup, the implementation module the catalog lists for
that name (a ConvNet lookup imports neither timm nor torchvision: ~0.5 s of a fresh worker that
has torch already; the ~1.3 s of ``torch._dynamo`` that torchvision would pull in is paid by
the first ``torch.optim`` optimizer anyway),
and every module of its kind when it must list them all (``names``, ``in``, an unknown name),
so a lookup never depends on which modules happen to be imported already.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name is not registered; the message lists the known names and a close match."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain sentence.
        return str(self.args[0])


def unknown_name_message(kind: str, name: object, known: Iterable[str]) -> str:
    """``unknown <kind> 'x' (did you mean 'y'?); known: …`` — one sentence, shared by registry and catalog."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}"


class Registry(Generic[T]):
    """A named collection of factories (datasets, networks, objectives, parameterizations).

    ``registry.register("name")`` decorates a factory; ``registry.get("name")`` returns it or
    raises :class:`UnknownNameError` naming every known entry. With ``catalog=True`` the
    implementation module :mod:`methods.catalog` lists for a looked-up name is imported on
    first use, and all of ``kind``'s modules when every entry is needed.
    """

    def __init__(self, kind: str, catalog: bool = False) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._pending = catalog

    def _load(self) -> None:
        if self._pending:
            self._pending = False  # registration below re-enters add(), never _load()
            from methods.catalog import load_implementations

            try:
                load_implementations(self.kind)
            except BaseException:
                self._pending = True
                raise

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        if self._pending and name not in self._entries:
            from methods.catalog import load_implementation

            load_implementation(self.kind, name)  # an unknown name: the full load below lists the known
        if name in self._entries:
            return self._entries[name]
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        self._load()
        return unknown_name_message(self.kind, name, self._entries)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
