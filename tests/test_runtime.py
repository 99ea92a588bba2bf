"""The trial driver's token and the fail-fast placement checks, on a real local Ray."""

from __future__ import annotations

import pytest

from orchestrator import runtime
from orchestrator.errors import UserError


def test_trial_token_falls_back_to_a_cpu_sliver_without_the_driver_resource(ray_session) -> None:
    assert "ddx_driver" not in ray_session.cluster_resources()
    assert runtime.trial_token(None) == {"CPU": 0.01}
    assert runtime.trial_token({"head": 0.5}) == {"head": 0.5}


def test_check_fits_passes_what_a_node_holds_and_names_the_key_of_what_none_does(ray_session) -> None:
    cpus = ray_session.cluster_resources()["CPU"]
    runtime.check_fits({"resources.cpus_per_worker": {"CPU": cpus, "GPU": 0.0}})
    with pytest.raises(UserError) as err:
        runtime.check_fits({"resources.eval_cpus": {"CPU": 1.0, "GPU": 1.0}})
    assert err.value.key == "resources.eval_cpus" and "GPU 1" in str(err.value)


def test_a_missing_token_resource_is_a_user_error(ray_session) -> None:
    with pytest.raises(UserError) as err:
        runtime.check_resources({"ddx_driver": 0.01})
    assert err.value.key == "resources.trial_resources"


def test_a_cpu_token_driver_counts_against_its_workers_node() -> None:
    from orchestrator.spec import Resources

    res = Resources(cpus_per_worker=2, eval_cpus=1, eval_gpus=0.25)
    assert runtime.unit_demands(res, {"ddx_driver": 0.01})["resources.cpus_per_worker"] == {"CPU": 2, "GPU": 0}
    assert runtime.unit_demands(res, {"CPU": 0.01})["resources.cpus_per_worker"]["CPU"] == 2.01
    assert runtime.unit_demands(res, {"CPU": 0.01})["resources.eval_cpus"] == {"CPU": 1, "GPU": 0.25}


def test_one_node_free_for_needs_a_single_node_with_the_demand_free_now(ray_session) -> None:
    from orchestrator.runtime import one_node_free_for

    assert one_node_free_for({"CPU": 1})  # the test session: one node, 2 CPUs
    assert not one_node_free_for({"CPU": 64})  # more than the node has: warming would wait (or scale up)
    assert not one_node_free_for({"CPU": 1, "GPU": 1})
    assert one_node_free_for({"CPU": 1, "GPU": 0})  # a zero demand is no demand
