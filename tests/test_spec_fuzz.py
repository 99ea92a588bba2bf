"""Property: whatever a sweep file turns into, ``ddx validate`` exits 0 with a plan, or 2 with one line.

Starting from every shipped sweep file, hypothesis drops keys, duplicates keys (textually, in the
YAML), retypes values (int ↔ float ↔ str ↔ bool ↔ list ↔ dict ↔ null; strings with control
characters and lone surrogates, which the YAML carries as escapes), inserts junk bytes and
truncates the file. The CLI (in-process) must answer either ``exit 0`` with the plan on stdout
or ``exit 2`` with exactly one line on stderr starting ``error:`` — never a traceback, never an
internal error, never another exit code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import REPO, class_folders, cli

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Iterator[Path]:
    """A folder with ``sweeps/`` and the shipped sweeps' ``../data/cifar10`` (class folders, no images);
    a mutated URI root waits on the network 2 s at most."""
    root = tmp_path_factory.mktemp("fuzz")
    class_folders(root / "data" / "cifar10")
    (root / "sweeps").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDX_URI_TIMEOUT", "2")
        yield root


#: replacement values: every YAML type, edge numbers, near-miss names, markup and control characters
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=200),
    st.sampled_from([0, 1, -1, 2**40, 0.5, -0.0, 1e300, float("nan"), float("inf")]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "x", "1", "none", "dm", "cfm", "pixels", "convnet", "vgg11", "hard", "soft", "sgd", "cosine"]),
    st.sampled_from(["[bold]x[/]", "a\nb", "s3://", ":smile:", "../..", "~", "\u2028"]),
    st.sampled_from(["\x00", "a\x1bb", "\x7f", "\x85", "\ud800", "x\tz"]),  # dumped as YAML escapes
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters=":"), max_size=8),
    st.lists(st.integers(min_value=-1, max_value=64), max_size=3),
    st.lists(st.sampled_from(["dm", "random", "resnet18", "hard"]), max_size=3),
    st.dictionaries(st.sampled_from(["grid", "choice", "uniform", "x"]), st.integers(0, 4), max_size=2),
    st.just({"grid": [1, 2]}),
    st.just({"uniform": [0.1, 1.0]}),
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path (dict keys and list indices) inside ``data``."""
    out = []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    else:
        return out
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for k in path[:-1]:
        data = data[k]
    return data


@st.composite
def mutated_sweeps(draw) -> bytes:
    source = draw(st.sampled_from(SWEEPS))
    data = yaml.safe_load(source.read_text())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        op = draw(st.sampled_from(["drop", "retype", "retype", "add"]))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        if op == "drop":
            del parent[path[-1]]
        elif op == "retype":
            parent[path[-1]] = copy.deepcopy(draw(VALUES))
        elif isinstance(parent, dict):
            key = draw(st.sampled_from(["ipc", "epochs", "name", "archs", "beta", "zzz", 7]))
            parent[key] = copy.deepcopy(draw(VALUES))
    text = yaml.safe_dump(copy.deepcopy(data), sort_keys=False, allow_unicode=True).encode()
    lines = text.splitlines(keepends=True)
    extra = draw(st.sampled_from(["none", "none", "duplicate", "junk", "truncate"]))
    if extra == "duplicate" and lines:  # the same key twice in one mapping, textually
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines.insert(i + 1, lines[i])
    elif extra == "junk":
        i = draw(st.integers(min_value=0, max_value=len(lines)))
        lines.insert(i, draw(st.binary(min_size=1, max_size=12)))
    text = b"".join(lines)
    if extra == "truncate":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


@pytest.mark.parametrize("source", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweeps_are_valid_starting_points(source: Path, workdir: Path) -> None:
    path = workdir / "sweeps" / source.name
    path.write_text(source.read_text())
    proc = cli("validate", str(path))
    assert proc.exit_code == 0, proc.stderr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(content=mutated_sweeps())
def test_any_mutation_gives_a_plan_or_one_error_line(workdir: Path, content: bytes) -> None:
    path = workdir / "sweeps" / "mutated.yaml"
    path.write_bytes(content)
    proc = cli("validate", str(path))
    out, err = proc.stdout, proc.stderr
    assert "Traceback" not in out + err
    assert proc.exit_code in (0, 2), (proc.exit_code, out, err, repr(proc.exception))
    if proc.exit_code == 0:
        assert out.startswith(f"ok {path}: ") and "distinct trial keys" in out and not err.strip(), (out, err)
    else:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"error: {path}"), lines[0]
        assert "internal error" not in lines[0], lines[0]
