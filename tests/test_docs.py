"""The documentation holds: README is a short front door, every link and path it cites exists,
its sweep file is the shipped quickstart, its test command is CI's, and docs/sweep-file.md names
every key of every option class a sweep file reads. Fast; no Ray, no torch."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
#: the folders whose paths, cited in backticks, must exist
CITED = ("methods/", "orchestrator/", "benchmarks/", "sweeps/", "docs/")

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"(?<![\w./<-])((?:methods|orchestrator|benchmarks|sweeps|docs)/[\w./*-]*)")


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces → hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (a repeated heading gets ``-1``, ``-2``, …)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return out


def test_slug_follows_github() -> None:
    assert slug("## 5. ZCA whitening (`dataset.zca`)".lstrip("# ")) == "5-zca-whitening-datasetzca"
    assert slug("Artifacts and each node's cache") == "artifacts-and-each-nodes-cache"
    assert slug("`experts:` block (`ExpertOptions`)") == "experts-block-expertoptions"
    assert slug("12. CPU-scale evidence (a.py → b.json)") == "12-cpu-scale-evidence-apy--bjson"
    assert slug("2. Three gradient paths (`tm_gradient`)") == "2-three-gradient-paths-tm_gradient"


def test_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move reference material to docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{doc.name}: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_cited_path_exists(doc: Path) -> None:
    missing = []
    for code in CODE.findall(prose(doc.read_text())):
        for cited in PATH.findall(code):
            cited = cited.split("::")[0].rstrip(".,;:")
            if "*" in cited:
                if not list(REPO.glob(cited)):
                    missing.append(cited)
            elif not (REPO / cited).exists():
                missing.append(cited)
    assert not missing, f"{doc.name} cites paths that do not exist: {missing}"


def test_the_readme_sweep_is_the_quickstart() -> None:
    blocks = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), re.M | re.S)
    shown = [yaml.safe_load(b) for b in blocks if re.search(r"^name: quickstart\b", b, re.M)]
    assert len(shown) == 1, "README should show sweeps/quickstart.yaml once, as a ```yaml block"
    assert shown[0] == yaml.safe_load((REPO / "sweeps" / "quickstart.yaml").read_text())


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "bash scripts/test.sh" in ci
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.M | re.S)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    assert "bash scripts/test.sh" in commands
    assert "bash scripts/quickstart.sh" in commands


def _sweep_file_classes() -> list[type]:
    """Every option class whose fields are keys of a sweep file (ddx's own components)."""
    from methods.datasets.options import DatasetOptions
    from methods.distill.options import DistillSettings
    from methods.distill.trial import TrialOptions
    from methods.evaluation.options import EvalSettings
    from methods.evaluation.real_training_options import RealTrainSettings
    from methods.registry import OBJECTIVES, PARAMETERIZATIONS, PREREQUISITES

    classes = [TrialOptions, DistillSettings, DatasetOptions, EvalSettings, RealTrainSettings]
    for registry in (OBJECTIVES, PARAMETERIZATIONS, PREREQUISITES):
        classes += [e.options for e in registry.entries() if e.options.__module__.startswith("methods.")]
    return classes


def test_the_sweep_file_reference_names_every_key() -> None:
    from orchestrator.spec.model import Metric, Resources, Scheduler, SweepBase, Tracking, _EvaluationKeys

    text = (REPO / "docs" / "sweep-file.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)`", text, re.M))  # the first column of a key table
    missing = []
    for cls in _sweep_file_classes():
        keys = [f.name for f in dataclasses.fields(cls) if f.name != "cache_dir"]  # set by ddx, not a key
        missing += [f"{cls.__name__}.{k}" for k in keys if k not in documented]
        assert cls.__name__ in text, f"docs/sweep-file.md does not name {cls.__name__}, the owner of its keys"
    for model in (SweepBase, Metric, Resources, Scheduler, Tracking, _EvaluationKeys):
        missing += [f"{model.__name__}.{k}" for k in model.model_fields if k not in documented]
    assert not missing, f"docs/sweep-file.md lacks these keys: {missing}"
