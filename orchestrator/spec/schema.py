"""Option dataclasses → pydantic: the spec's blocks and value checks, from one source of truth.

The methods declare every setting once, as a dataclass field with a precise type
(``Literal`` vocabularies, ``annotated_types`` bounds, :class:`methods.options.Checked` /
:class:`~methods.options.Named` metadata; see :mod:`methods.options`). This module turns those
declarations into pydantic: :func:`block_model` makes a spec block (a strict pydantic model)
from a dataclass, and :func:`check_value` validates one flat hyper-parameter against the
field that reads it. Nothing here knows any particular setting.

Validation is strict: no string→number or number→bool coercion (``iterations: "3"`` is an
error, not 3), integers are not floats, and NaN/∞ are rejected.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, create_model

from methods.options import Checked, Named
from methods.records import OptionValues

#: every spec model and every value check: unknown keys rejected, no coercion, finite floats
STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Strict(BaseModel):
    model_config = STRICT


def _after(check: Any) -> AfterValidator:
    def run(value: Any) -> Any:
        check(value)
        return value

    return AfterValidator(run)


def pydantic_type(hint: Any) -> Any:
    """``hint`` with :class:`~methods.options.Checked` metadata turned into pydantic validators
    (recursively through ``Optional``/unions, lists, tuples and dicts)."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        converted = [_after(m.check) if isinstance(m, Checked) else m for m in meta]
        return Annotated[(pydantic_type(base), *converted)]  # type: ignore[valid-type]
    if origin in (Union, types.UnionType):
        return functools.reduce(operator.or_, [pydantic_type(a) for a in get_args(hint)])
    if origin in (list, tuple, dict, set, frozenset) and get_args(hint):
        args = tuple(pydantic_type(a) if a is not Ellipsis else a for a in get_args(hint))
        return origin[args if len(args) > 1 else args[0]]
    return hint


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types with their ``Annotated`` metadata."""
    return typing.get_type_hints(cls, include_extras=True)


@functools.cache
def field_type(cls: type, name: str) -> Any:
    """The pydantic type of field ``name`` of dataclass ``cls``."""
    return pydantic_type(hints(cls)[name])


@functools.cache
def _adapter(cls: type, name: str) -> TypeAdapter[Any]:
    return TypeAdapter(field_type(cls, name), config=ConfigDict(strict=True, allow_inf_nan=False))


def check_value(cls: type, name: str, value: Any) -> Any:
    """Validate ``value`` for field ``name`` of dataclass ``cls``; raises pydantic's ``ValidationError``."""
    return _adapter(cls, name).validate_python(value)


def named_kind(cls: type, name: str) -> str | None:
    """The catalog kind a field names (``Annotated[str, named("network")]`` → ``"network"``), else None."""
    return _named_kind(hints(cls)[name])


def _named_kind(hint: Any) -> str | None:
    if get_origin(hint) is Annotated:
        for m in get_args(hint)[1:]:
            if isinstance(m, Named):
                return m.kind
        return _named_kind(get_args(hint)[0])
    if get_origin(hint) in (Union, types.UnionType):
        kinds = [k for a in get_args(hint) if (k := _named_kind(a))]
        return kinds[0] if kinds else None
    return None


def accepts_list(cls: type, name: str) -> bool:
    """Whether field ``name`` of ``cls`` may hold a list (else a list in ``method:`` is a mistaken sweep)."""
    return _accepts_list(hints(cls)[name])


def _accepts_list(hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is Annotated:
        return _accepts_list(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return any(_accepts_list(a) for a in get_args(hint))
    return hint is Any or origin in (list, tuple, set, frozenset) or hint in (list, tuple)


def literal_values(hint: Any) -> tuple[Any, ...]:
    """The values a ``Literal`` (possibly ``Annotated`` or ``Optional``) allows; () for other types."""
    origin = get_origin(hint)
    if origin is Literal:
        return get_args(hint)
    if origin is Annotated:
        return literal_values(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return tuple(v for a in get_args(hint) for v in literal_values(a))
    return ()


class OptionsBlock(Strict):
    """A spec block generated from an option dataclass (:func:`block_model`).

    :meth:`options` gives the dataclass instance; the dataclass's public methods are reachable
    on the block too (``spec.teacher.settings()`` calls ``TeacherOptions.settings``).
    """

    __options__: ClassVar[type | None] = None
    __option_fields__: ClassVar[tuple[str, ...]] = ()

    def options(self) -> Any:
        """The option dataclass this block describes (its ``__post_init__`` checks run)."""
        cls = type(self).__options__
        assert cls is not None, "not generated from a dataclass"
        return cls(**{k: getattr(self, k) for k in type(self).__option_fields__})

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            cls = type(self).__options__
            if cls is not None and not name.startswith("_") and callable(getattr(cls, name, None)):
                return getattr(self.options(), name)
            raise


def block_model(
    cls: type,
    name: str,
    *,
    base: type[OptionsBlock] = OptionsBlock,
    exclude: typing.Iterable[str] = (),
    defaults: OptionValues | None = None,
    doc: str | None = None,
    module: str | None = None,
) -> type[OptionsBlock]:
    """A strict pydantic model with one field per field of dataclass ``cls`` (same type, same default).

    ``exclude`` leaves fields out (keys the sweep file must not set); ``defaults`` replaces
    defaults; ``base`` adds orchestration-only keys and validators. ``module`` is where the
    model is bound to ``name`` (so it pickles).
    """
    skip = set(exclude)
    defaults = defaults or {}
    fields: dict[str, Any] = {}
    kept = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kept.append(f.name)
        if f.name in defaults:
            default: Any = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (field_type(cls, f.name), default)
    model = create_model(
        name, __base__=base, __doc__=doc or cls.__doc__, __module__=module or base.__module__, **fields
    )
    model.__options__ = cls
    model.__option_fields__ = tuple(kept)
    return model


@functools.cache
def values_model(cls: type) -> type[OptionsBlock]:
    """The strict pydantic model of dataclass ``cls``'s fields (what :func:`resolve_options` validates)."""
    return block_model(cls, f"{cls.__name__}Values", module=__name__)


T = typing.TypeVar("T")


def resolve_options(cls: type[T], values: typing.Mapping[str, Any]) -> T:
    """An instance of option dataclass ``cls`` from plain ``values`` — the one rule set: every value
    checked strictly against its field's type (no coercion but int → float), then ``cls``'s own
    constructor (its ``__post_init__`` rules). Raises pydantic's ``ValidationError`` or the rule's
    ``ValueError``."""
    return values_model(cls).model_validate(dict(values)).options()


__all__ = [
    "STRICT",
    "OptionsBlock",
    "Strict",
    "accepts_list",
    "block_model",
    "check_value",
    "field_type",
    "hints",
    "literal_values",
    "named_kind",
    "pydantic_type",
    "resolve_options",
    "values_model",
]
