"""cluster.yaml is a valid Ray autoscaler config and matches what the GPU sweep asks for."""

from __future__ import annotations

import copy

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from orchestrator.spec.load import parse_spec
from tests.cluster import documented_local_cluster, ray_start_flags
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
    fractional["available_node_types"]["ray.head.default"]["resources"] = {"ddx_driver": 0.5}
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


@pytest.fixture(scope="module")
def local() -> dict:
    return yaml.safe_load((REPO / "cluster.local.yaml").read_text())


def test_cluster_local_yaml_passes_rays_schema(local: dict) -> None:
    # `ray start --autoscaling-config` checks the schema only (the wheel lacks the fake
    # provider's defaults file that `ray up` would fill in from), so every key is spelt out
    validate_config(copy.deepcopy(local))
    assert local["provider"]["type"] == "fake_multinode"
    assert local["idle_timeout_minutes"] < 1  # idle workers go soon (the autoscaler test waits for it)


def test_local_and_aws_configs_have_the_same_node_types(cluster: dict, local: dict) -> None:
    assert set(local["available_node_types"]) == set(cluster["available_node_types"])
    assert local["head_node_type"] == cluster["head_node_type"] == "ray.head.default"  # the fake provider's name
    head_aws = cluster["available_node_types"]["ray.head.default"]["resources"]
    head_local = local["available_node_types"]["ray.head.default"]["resources"]
    assert head_aws == head_local and head_aws["CPU"] == 0 and head_aws["ddx_driver"] >= 1  # drivers only
    for config in (cluster, local):
        worker = config["available_node_types"]["worker"]
        assert worker["min_workers"] == 0 and worker["resources"]["CPU"] >= 1  # scaled from zero on demand
        assert "ddx_driver" not in worker["resources"]


def test_gpu_sweep_packs_two_students_on_a_worker(cluster: dict, cifar10_root) -> None:
    """cfm_beta.yaml's units fit cluster.yaml's worker: a Train worker takes one, two evaluations share one."""
    data = yaml.safe_load((REPO / "sweeps" / "cfm_beta.yaml").read_text())
    data["dataset"]["root"] = str(cifar10_root)
    res = parse_spec(data).resources
    node = cluster["available_node_types"]["worker"]["resources"]
    assert res.cpus_per_worker <= node["CPU"] and res.gpus_per_worker <= node["GPU"]
    assert 2 * res.eval_cpus <= node["CPU"] and 2 * res.eval_gpus <= node["GPU"]
    assert res.eval_gpus < node["GPU"]  # not one student per GPU


def test_the_documented_local_cluster_holds_the_quickstart_on_ports_of_its_own(local: dict) -> None:
    """docs/cluster.md's commands for cluster.local.yaml: the head listens where the file's provider
    looks for it, on none of Ray's default ports (another Ray may hold them), and a worker node
    holds a unit of the quickstart the docs submit (a 1-CPU worker left it waiting for ever)."""
    start, submit = documented_local_cluster(REPO / "docs" / "cluster.md")
    flags = ray_start_flags(start)
    assert local["provider"]["gcs_address"] == f"{flags['node-ip-address']}:{flags['port']}"
    assert flags["autoscaling-config"] == "cluster.local.yaml" and " --block " in start
    assert start.startswith('RAY_FAKE_CLUSTER=1 bash -c \'trap "kill -TERM 0" INT; ray start --head ')
    ports = {flags[k] for k in ("port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port")}
    assert len(ports) == 4 and not ports & {"6379", "8265", "10001", "52365"}
    assert f"--address http://127.0.0.1:{flags['dashboard-port']}" in submit
    head = local["available_node_types"]["ray.head.default"]["resources"]
    assert flags["num-cpus"] == str(head["CPU"]) and yaml.safe_load(flags["resources"]) == {
        k: v for k, v in head.items() if k != "CPU"
    }
    sweep = submit.split(" ddx sweep ")[1].split()[0]
    res = parse_spec(yaml.safe_load((REPO / sweep).read_text())).resources
    worker = local["available_node_types"]["worker"]["resources"]
    assert res.cpus_per_worker <= worker["CPU"] and res.eval_cpus <= worker["CPU"]
    assert res.gpus_per_worker == res.eval_gpus == 0 and "GPU" not in worker
