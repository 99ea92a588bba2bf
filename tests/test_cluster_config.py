"""cluster.yaml is a valid Ray autoscaler config and matches what the GPU sweep asks for."""

from __future__ import annotations

import copy

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from orchestrator.spec import parse_spec
from tests.helpers import REPO


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def _validate(config: dict) -> None:
    """What `ray up` does first: fill in Ray's defaults, then check against its JSON schema."""
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_passes_rays_schema(cluster: dict) -> None:
    _validate(cluster)


def test_schema_check_is_real(cluster: dict) -> None:
    bad = copy.deepcopy(cluster)
    bad["not_a_ray_key"] = 1
    with pytest.raises(Exception, match="not_a_ray_key"):
        _validate(bad)
    fractional = copy.deepcopy(cluster)
    fractional["available_node_types"]["head"]["resources"] = {"ddx_driver": 0.5}
    with pytest.raises(Exception, match="integer"):
        _validate(fractional)


def test_cluster_resources_are_integers_and_dashboard_is_local(cluster: dict) -> None:
    for node in cluster["available_node_types"].values():
        assert all(isinstance(v, int) for v in node["resources"].values())
    assert any("--dashboard-host=127.0.0.1" in c for c in cluster["head_start_ray_commands"])


def test_gpu_sweep_trials_fit_the_head_nodes_driver_resource(cluster: dict, cifar10_root) -> None:
    data = yaml.safe_load((REPO / "sweeps" / "cfm_beta.yaml").read_text())
    data["dataset"]["root"] = str(cifar10_root)
    spec = parse_spec(data)
    head = cluster["available_node_types"][cluster["head_node_type"]]
    for name, amount in spec.resources.trial_resources.items():
        assert name in head["resources"] and 0 < amount <= head["resources"][name]
    assert spec.resources.gpus_per_worker > 0 and spec.resources.eval_gpus > 0
