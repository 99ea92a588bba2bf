"""ddx uses Ray through its public API only, so it runs on the Ray versions ``pyproject.toml`` allows.

Ray's private modules, testing-only parameters and hidden ``ray start`` flags may change in any
release; so may the constants inside Tune (docs/architecture.md, "Ray's public API only").
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: what marks a use of Ray's internals, and why it is one
PRIVATE = {
    r"\bray\.(?:\w+\.)*_(?!_)\w+": "a private module or name of Ray's (a leading underscore)",
    r"\bfrom ray(?:\.\w+)* import _\w+": "a private name of Ray's",
    r"\b_system_config\b": "ray.init's testing-only system config",
    r"--no-monitor|--system-config": "a hidden flag of `ray start`",
    r"\bclass_cache\b|PL_DISABLE_FORK": "Tune's private trial environment",
    r"^\s*(?:import grpc|from grpc\b)": "Ray's gRPC dependency, spoken to Ray's servers directly",
}


def test_ddx_uses_no_internal_of_ray() -> None:
    found = []
    for folder in ("orchestrator", "methods"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for pattern, what in PRIVATE.items():
                    if re.search(pattern, line):
                        found.append(f"{path.relative_to(REPO)}:{number}: {what}: {line.strip()}")
    assert found == []


def test_the_ray_pin_allows_more_than_one_minor_release() -> None:
    """The range the suite runs on (docs/architecture.md), not the one release ddx was written against."""
    text = (REPO / "pyproject.toml").read_text()
    pin = re.search(r'"ray\[[^]]*\]>=2\.(\d+)(?:\.\d+)?,<2\.(\d+)"', text)
    assert pin is not None, "ray's requirement is not of the form >=2.A,<2.B"
    assert int(pin.group(2)) - int(pin.group(1)) > 1
