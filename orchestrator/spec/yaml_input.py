"""Reading a sweep file: bytes → UTF-8 text → YAML (safe) → data, every failure one line.

``yaml.safe_load`` semantics (plain data only, no Python objects), plus what it lets through:
a mapping that names a key twice is an error naming the key and both lines (PyYAML keeps the
last value silently — a known source of wrong published configs); a string (key or value) that
holds a control character or a lone surrogate, which YAML's escapes (``"\\0"``, ``"\\e"``,
``"\\ud800"``) can write though the file itself is printable, is an error naming its key (a NUL
in a path, for one, fails deep inside ``os``; a surrogate cannot be written out as UTF-8).
Non-UTF-8 bytes, an empty file, a document that is not a mapping and anything the YAML parser
rejects become a :class:`~orchestrator.errors.SpecError`, never a traceback.

Input is bounded before it is built: a file over :data:`MAX_BYTES`, or a document that holds more
than :data:`MAX_VALUES` values once its aliases (``*name``) are expanded — a "billion laughs"
document of a few hundred bytes expands to 10⁹ strings, which every later step would walk — or
whose aliases refer to a node that contains them (a recursive structure) is one line, read from
the parsed nodes in time proportional to the file, not to its expansion.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from methods.records import JsonObject
from orchestrator.errors import SpecError

#: the largest sweep or evaluation file read (bytes); a sweep file is a few KB, and PyYAML (pure Python)
#: parses ~150 KB a second
MAX_BYTES = 1 << 20
#: the most values (scalars, lists, mappings) a document may hold with its aliases expanded
MAX_VALUES = 100_000


class SweepLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (a subclass, so the global loader is untouched)."""


#: a YAML mapping as read, before any validation (a sweep file, an evaluation configuration)
Document = JsonObject


def _key_label(loader: SweepLoader, node: yaml.Node) -> Any:
    """The constructed key of a mapping entry (hashable), or its source text."""
    if isinstance(node, yaml.ScalarNode):
        try:
            key = loader.construct_object(node, deep=True)
            hash(key)
            return key
        except (yaml.YAMLError, TypeError):
            return node.value
    return None  # complex keys: constructing them reports their own errors


def _path(parts: list[str]) -> str:
    out = ""
    for p in parts:
        out += p if p.startswith("[") else (f".{p}" if out else p)
    return out


def check_duplicate_keys(loader: SweepLoader, root: yaml.Node) -> None:
    """Raise :class:`SpecError` at the first mapping that names a key twice (merge keys ``<<`` excepted)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, list[str]]] = [(root, [])]
    while stack:
        node, where = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes: visit each once
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    stack.append((value_node, where))
                    continue
                key = _key_label(loader, key_node)
                line = key_node.start_mark.line + 1
                if key is not None and key in lines:
                    raise SpecError(
                        f"duplicated key {key!r} (lines {lines[key]} and {line}); keep one",
                        key=_path([*where, str(key)]),
                    )
                if key is not None:
                    lines[key] = line
                stack.append((value_node, [*where, str(key if key is not None else key_node.start_mark.line + 1)]))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, [*where, f"[{i}]"]))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node, limit: int = MAX_VALUES) -> None:
    """Raise :class:`SpecError` when the document holds more than ``limit`` values with every alias
    expanded, or an alias inside the node it names (a recursive structure).

    Each distinct node is visited once (an alias is the node it names, shared), so the count costs
    time proportional to the file even when the expansion is astronomically larger.
    """
    sizes: dict[int, int] = {}  # node id → its values with aliases expanded (nodes finished)
    entered: set[int] = set()  # nodes whose children are being counted (the current path)
    aliased = False
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            entered.discard(id(node))
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > limit:
                what = "once its YAML aliases (*name) are expanded (an alias bomb?)" if aliased else ""
                raise SpecError(
                    f"the document holds more than {limit:,} values {what}".rstrip()
                    + f"; a YAML document may hold at most {limit:,} (write fewer values, or expand fewer aliases)"
                )
            sizes[id(node)] = total
            continue
        if id(node) in sizes:
            aliased = True
            continue
        entered.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in entered:
                mark = child.start_mark
                raise SpecError(
                    f"a YAML alias at line {mark.line + 1} refers to a node that contains it (a recursive "
                    "structure, which no setting can hold); write the values out"
                )
            if id(child) in sizes:
                aliased = True
            else:
                stack.append((child, False))


#: characters no setting may hold: C0 controls but tab, newline and carriage return; DEL; C1 controls;
#: lone surrogates
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_strings(data: Any) -> None:
    """Raise :class:`SpecError` at the first string (mapping key or value) holding a forbidden character."""
    stack: list[tuple[Any, list[str]]] = [(data, [])]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                label = [*where, str(key) if isinstance(key, str) and not _FORBIDDEN.search(key) else repr(key)]
                if isinstance(key, str):
                    _check_string(key, label, "key")
                stack.append((item, label))
        elif isinstance(value, list):
            stack.extend((item, [*where, f"[{i}]"]) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_string(value, where, "value")


def _check_string(text: str, where: list[str], what: str) -> None:
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        raise SpecError(
            f"the {what} holds the character U+{ord(bad.group()):04X} (a control character or lone surrogate, "
            'written with a YAML escape such as "\\0"); remove it',
            key=_path(where) or None,
        )


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is None and isinstance(err, yaml.reader.ReaderError):
        c = err.character
        shown = f"U+{c:04X}" if isinstance(c, int) else (f"byte 0x{c[0]:02x}" if isinstance(c, bytes) else repr(c))
        return f"invalid YAML at position {err.position}: character {shown} is not allowed (only printable text)"
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or (str(err).splitlines() or ["unreadable"])[0]
    context = getattr(err, "context", None)
    return f"invalid YAML{at}: {problem}" + (f" ({context})" if context and context not in problem else "")


def parse_yaml(text: str) -> Any:
    """The data of one YAML document (``safe`` semantics), duplicate keys rejected; raises :class:`SpecError`."""
    if len(text) > MAX_BYTES:
        raise SpecError(f"{len(text):,} characters; a YAML document may hold at most {MAX_BYTES:,} (1 MiB)")
    loader: SweepLoader | None = None
    try:
        loader = SweepLoader(text)  # the reader rejects non-printable characters here
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty; a sweep needs at least a name and an objective (docs/sweep-file.md)")
        check_expansion(node)  # before anything walks the values: an alias bomb stops here
        check_duplicate_keys(loader, node)
        data = loader.construct_document(node)
        check_strings(data)
        return data
    except yaml.YAMLError as err:
        raise SpecError(_yaml_problem(err)) from None
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_value(text: str) -> Any:
    """One value given on a command line (``KEY=VALUE``), read as :func:`parse_yaml` reads a file
    (an empty value is ``None``, as ``yaml.safe_load`` has it); raises :class:`SpecError`."""
    return parse_yaml(text) if text.strip() else None


def read_yaml(path: Path) -> Any:
    """Read and parse a sweep file; every problem is a :class:`SpecError` naming ``path``."""
    where = str(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
        raise SpecError(f"{what} (give the path of a sweep YAML)", where=where)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(
                f"the file is {size / (1 << 20):.1f} MiB; a sweep or evaluation file may be at most "
                f"{MAX_BYTES >> 20} MiB (is it the right file?)",
                where=where,
            )
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read the file ({err.strerror or err.__class__.__name__})", where=where) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); save the sweep file as UTF-8",
            where=where,
        ) from None
    try:
        return parse_yaml(text)
    except SpecError as err:
        raise SpecError(err.message, where=where, key=err.key) from None


__all__ = [
    "MAX_BYTES",
    "MAX_VALUES",
    "Document",
    "SweepLoader",
    "check_duplicate_keys",
    "check_expansion",
    "check_strings",
    "parse_value",
    "parse_yaml",
    "read_yaml",
]
