"""Plugins: every component a sweep may name, declared once and discovered by entry point.

A component — a dataset, a network, an objective, a parameterization, a prerequisite, an
evaluation preset — is declared by an **entry**: a small torch-free dataclass that holds its
name, what the sweep validator needs to know of it (its ``options`` dataclass, the
prerequisites an objective requires, a network's smallest input, a dataset's shape, …) and
``build``, the ``"module:attr"`` of its implementation, imported only when it is built. ddx's
own components and a researcher's package declare their entries the same way, as Python
entry points in their ``pyproject.toml`` (docs/extending.md)::

    [project.entry-points."ddx.plugins"]
    my_package = "my_package:ENTRIES"

An entry point names one entry or a sequence of entries. A kind's own group (``ddx.objectives``,
``ddx.networks``, …) holds entries of that kind; the group ``ddx.plugins`` may hold entries of
every kind at once (one line for a package that adds an objective, its prerequisite and a
network). The registries read entry points lazily: looking a name up loads the entry point of
that name in the kind's group first, then the whole group, then ``ddx.plugins`` (only to list
the names or to explain an unknown one, or for a name not found before). So a sweep of built-ins
imports no one else's code, and nothing here imports torch (``ddx validate`` stays torch-free as
long as the entries' modules are).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar


class UnknownNameError(KeyError, ValueError):
    """A name no plugin declares; the message lists the known names and a close match."""

    def __str__(self) -> str:  # KeyError quotes its argument; this is a sentence
        return str(self.args[0])


class PluginError(ValueError):
    """A plugin that cannot be loaded or declares something wrong (the message names it)."""


def unknown_name_message(kind: str, name: object, known: Sequence[str]) -> str:
    """``unknown <kind> 'x' (did you mean 'y'?); known: …`` — one sentence."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}"


@cache
def resolve(ref: str) -> Any:
    """The object a ``"module:attr"`` reference names (imported on first use)."""
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise PluginError(f"{ref!r} is not a 'module:attr' reference")
    return getattr(importlib.import_module(module), attr)


# --- entries: what each kind of plugin declares ---------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """A component: its ``name`` and ``build``, the ``"module:attr"`` of its implementation."""

    name: str
    build: str

    def implementation(self) -> Any:
        """The implementation ``build`` names (its module imported now; it may import torch)."""
        return resolve(self.build)


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """A real dataset. ``build``: a loader ``(DatasetOptions) -> RawSplits``. ``layout``: a
    ``"module:function"`` ``(root: Path, name: str) -> str | None`` saying why a local folder does
    not hold the dataset (``ddx validate`` asks before anything runs; the loader asks again).
    ``smallest_class``: training images of its smallest class as shipped (None: depends on the
    files); ``test_split``: False when the loader carves the test set out of the training images."""

    channels: int
    native_resolution: int | None
    needs_root: bool
    smallest_class: int | None = None
    test_split: bool = True
    layout: str | None = None

    def layout_problem(self, root: Any) -> str | None:
        """What is wrong with the local folder ``root`` (a ``Path``) as this dataset's root, or None."""
        if self.layout is None:
            return None
        if not root.is_dir():
            return f"{str(root)!r} is not a folder"
        return resolve(self.layout)(root, self.name)


@dataclass(frozen=True)
class NetworkEntry(Entry):
    """A student/teacher network. ``build``: ``(channels, num_classes, resolution, **kwargs) ->
    Classifier`` called with ``kwargs``; ``min_resolution``: the smallest input (px) its design
    accepts (``min_resolution_large`` for inputs above the small-image regime, when it differs).
    The builder never re-checks the minimum: building refuses smaller inputs from this entry."""

    min_resolution: int
    min_resolution_large: int | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()

    def minimum(self, resolution: int) -> int:
        """The smallest input accepted in ``resolution``'s regime (small-image stems up to 64 px)."""
        from methods.networks.info import SMALL_IMAGE_MAX

        if resolution > SMALL_IMAGE_MAX and self.min_resolution_large is not None:
            return self.min_resolution_large
        return self.min_resolution

    def accepts(self, resolution: int) -> bool:
        return resolution >= self.minimum(resolution)


@dataclass(frozen=True)
class ObjectiveEntry(Entry):
    """A distillation objective. ``build``: its :class:`~methods.distill.objective.Objective`
    class (constructed with an ``options`` instance); ``requires``: the prerequisites it needs."""

    options: type
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParameterizationEntry(Entry):
    """How a set is stored. ``build``: its :class:`~methods.parameterizations.base.Parameterization`
    class; ``scalars``: ``(SetShape, options) -> int``, the scalars one instance stores (torch-free:
    the validator checks budgets with it, the class uses the same function)."""

    options: type
    scalars: Callable[..., int] = field(compare=False)


@dataclass(frozen=True)
class PrerequisiteEntry(Entry):
    """Something produced once from the real data (a teacher, expert trajectories). ``build``:
    its :class:`~methods.prerequisites.Prerequisite` class; ``options``: the sweep file's
    top-level block of the same name."""

    options: type


E = TypeVar("E")


class Registry(Generic[E]):
    """The components of one kind, read from the entry-point group ``group`` on demand.

    ``get(name)`` returns the entry (:class:`UnknownNameError` with a did-you-mean otherwise),
    ``names()`` every name, ``register(entry)`` adds one in-process (tests, notebooks) under the
    same rules (one entry per name).
    """

    def __init__(self, kind: str, group: str, entry_type: type | str) -> None:
        self.kind = kind
        self.group = group
        self._entry_type = entry_type
        self._entries: dict[str, E] = {}
        self._origins: dict[str, str] = {}
        self._loaded: set[str] = set()  # entry-point values loaded already
        self._all = False

    # --- lookup -------------------------------------------------------------------------------
    def get(self, name: str) -> E:
        if name not in self._entries and isinstance(name, str):
            for ep in self._points():
                if ep.name == name:
                    self._load(ep)
        if name not in self._entries:
            self._load_all()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._entries)

    def entries(self) -> list[E]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown_message(self, name: object) -> str:
        return unknown_name_message(self.kind, name, self.names())

    def check(self, name: object) -> str:
        """``name`` if registered, else :class:`UnknownNameError` (what ``Named`` fields run)."""
        if not isinstance(name, str):
            raise UnknownNameError(self.unknown_message(name))
        self.get(name)
        return name

    def origin(self, name: str) -> str:
        """Which distribution and entry point declared ``name``."""
        self.get(name)
        return self._origins[name]

    # --- declaring ----------------------------------------------------------------------------
    def register(self, entry: E, origin: str = "register()") -> E:
        """Add ``entry`` (the built-in entry points load first, so a clash is always reported)."""
        self._load_all()
        self._add(entry, origin)
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry added with :meth:`register` (tests)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    def _type(self) -> type:
        if isinstance(self._entry_type, str):
            self._entry_type = resolve(self._entry_type)
        return self._entry_type  # type: ignore[return-value]

    def _add(self, entry: Any, origin: str) -> None:
        expected = self._type()
        if not isinstance(entry, expected):
            raise PluginError(
                f"{origin} declares a {type(entry).__name__} as a {self.kind}; a {self.kind} plugin gives a "
                f"{expected.__name__} (or a list of them)"
            )
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{origin} declares a {self.kind} without a name")
        if name in self._entries and self._entries[name] != entry:
            raise PluginError(f"{self.kind} {name!r} is declared twice: by {self._origins[name]} and by {origin}")
        self._entries[name] = entry
        self._origins[name] = origin

    # --- entry points -------------------------------------------------------------------------
    def _points(self) -> list[importlib.metadata.EntryPoint]:
        return _entry_points(self.group)

    def _load(self, ep: importlib.metadata.EntryPoint, mixed: bool = False) -> None:
        """Load one entry point; ``mixed``: from ``ddx.plugins``, whose entries of other kinds are skipped."""
        key = f"{ep.group}:{ep.name}={ep.value}"
        if key in self._loaded:
            return
        self._loaded.add(key)
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        origin = f"{dist} ({ep.group}: {ep.name} = {ep.value})"
        value = load_entry_point(ep, origin)
        for entry in value if isinstance(value, (list, tuple)) else [value]:
            if not mixed or isinstance(entry, self._type()):
                self._add(entry, origin)

    def _load_all(self) -> None:
        if self._all:
            return
        for ep in self._points():
            self._load(ep)
        for ep in _entry_points(PLUGINS_GROUP):
            self._load(ep, mixed=True)
        self._all = True
        if not self._entries:
            raise PluginError(
                f"no {self.kind} is registered (entry-point group {self.group!r} is empty): ddx is not "
                "installed in this environment; install it (pip install -e .)"
            )


#: the entry-point group whose entries may be of any kind (a package's components in one line)
PLUGINS_GROUP = "ddx.plugins"


@cache
def load_entry_point(ep: importlib.metadata.EntryPoint, origin: str) -> Any:
    """What an entry point names, loaded once per process; a failure is one :class:`PluginError` line."""
    try:
        return ep.load()
    except Exception as err:
        line = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise PluginError(f"plugin {origin} cannot be loaded: {type(err).__name__}: {line}") from err


@cache
def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of ``group`` (read once per process)."""
    return list(importlib.metadata.entry_points(group=group))


DATASETS: Registry[DatasetEntry] = Registry("dataset", "ddx.datasets", DatasetEntry)
NETWORKS: Registry[NetworkEntry] = Registry("network", "ddx.networks", NetworkEntry)
OBJECTIVES: Registry[ObjectiveEntry] = Registry("objective", "ddx.objectives", ObjectiveEntry)
PARAMETERIZATIONS: Registry[ParameterizationEntry] = Registry(
    "parameterization", "ddx.parameterizations", ParameterizationEntry
)
PREREQUISITES: Registry[PrerequisiteEntry] = Registry("prerequisite", "ddx.prerequisites", PrerequisiteEntry)
PRESETS: Registry[Any] = Registry("preset", "ddx.presets", "methods.evaluation.presets:ProtocolPreset")

#: kind → its registry (the kinds a ``Named`` option field may name)
REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r for r in (DATASETS, NETWORKS, OBJECTIVES, PARAMETERIZATIONS, PREREQUISITES, PRESETS)
}


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (``network``, ``dataset``, ``objective``, …)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise ValueError(f"unknown plugin kind {kind!r}; known: {', '.join(REGISTRIES)}") from None


__all__ = [
    "DATASETS",
    "NETWORKS",
    "OBJECTIVES",
    "PARAMETERIZATIONS",
    "PLUGINS_GROUP",
    "PREREQUISITES",
    "PRESETS",
    "REGISTRIES",
    "DatasetEntry",
    "Entry",
    "NetworkEntry",
    "ObjectiveEntry",
    "ParameterizationEntry",
    "PluginError",
    "PrerequisiteEntry",
    "Registry",
    "UnknownNameError",
    "registry",
    "resolve",
    "unknown_name_message",
]
