"""Container resources: quantities, the defaults every dok pod gets, and what a Dask worker derives."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from dok.core.resources import (DEFAULT_JOB_RESOURCES, DEFAULT_WORKER_RESOURCES, cpu_cores, is_quantity,
                                memory_bytes, quantity, requests_above_limits, worker_memory_limit, worker_nthreads)
from dok.core.runspec import RunSettingError, RunSpec


@pytest.mark.parametrize("text,value", [
    ("250m", Decimal("0.25")), ("2", Decimal(2)), ("1.5", Decimal("1.5")), (2, Decimal(2)), (0.5, Decimal("0.5")),
    ("1Ki", Decimal(1024)), ("1Mi", Decimal(2**20)), ("1Gi", Decimal(2**30)), ("2Ti", Decimal(2 * 2**40)),
    ("1k", Decimal(1000)), ("1M", Decimal(10**6)), ("1G", Decimal(10**9)), ("1E", Decimal(10**18)),
    ("1e3", Decimal(1000)), ("5E-1", Decimal("0.5")), ("129e6", Decimal(129 * 10**6)), ("0", Decimal(0)),
])
def test_quantities(text: str | int | float, value: Decimal) -> None:
    assert quantity(text) == value and is_quantity(text)


@pytest.mark.parametrize("text", ["", "lots", "1 Gi", "1GB", "1gi", "Gi", "-1", "1.2.3", True, None, [1]])
def test_not_quantities(text: object) -> None:
    assert not is_quantity(text)


def test_units() -> None:
    assert cpu_cores("100m") == 0.1 and cpu_cores("3") == 3.0
    assert memory_bytes("2Gi") == 2147483648 and memory_bytes("1.5Mi") == 1572864 and memory_bytes("1500m") == 2


def test_requests_above_limits() -> None:
    assert requests_above_limits({"requests": {"memory": "4Gi", "cpu": "1"}, "limits": {"memory": "2Gi"}}) == [
        "memory: request 4Gi > limit 2Gi"]
    assert requests_above_limits({"requests": {"memory": "2Gi"}, "limits": {"memory": "2048Mi"}}) == []
    assert requests_above_limits({"requests": {"cpu": "1001m"}, "limits": {"cpu": "1"}}) == ["cpu: request 1001m > limit 1"]


@pytest.mark.parametrize("resources,threads", [
    (None, 1), ({}, 1), ({"requests": {"cpu": "100m"}}, 1), ({"requests": {"cpu": "1500m"}}, 2),
    ({"requests": {"cpu": "1"}, "limits": {"cpu": "4"}}, 4), ({"limits": {"memory": "1Gi"}}, 1),
    ({"requests": {"cpu": 3}}, 3),
])
def test_worker_nthreads(resources: dict | None, threads: int) -> None:
    assert worker_nthreads(resources) == threads


def test_worker_memory_limit() -> None:
    assert worker_memory_limit({"limits": {"memory": "2Gi"}}) == 2 * 2**30
    assert worker_memory_limit({"requests": {"memory": "2Gi"}}) is None  # a request is no limit
    assert worker_memory_limit(None) is None and worker_memory_limit({"limits": {"memory": "0"}}) is None


# -- the defaults -----------------------------------------------------------------------------------------------
def test_every_pod_gets_requests_and_a_memory_limit_by_default() -> None:
    spec = RunSpec()
    for resources in (spec.resources, spec.worker_resources):
        assert set(resources["requests"]) == {"cpu", "memory"}, "requests: not BestEffort, LimitRange-proof"
        assert "memory" in resources["limits"] and "cpu" not in resources["limits"]  # no CPU throttling
        assert requests_above_limits(resources) == []
    assert spec.resources == DEFAULT_JOB_RESOURCES and spec.worker_resources == DEFAULT_WORKER_RESOURCES


def test_defaults_fit_the_local_two_cpu_node() -> None:
    """docs: three concurrent e2e runs of a job pod + 2 workers, or one with max_workers=3, beside another
    session's, must fit the local cluster's 2 allocatable CPUs (and 23 GiB of memory)."""
    job = cpu_cores(DEFAULT_JOB_RESOURCES["requests"]["cpu"])
    worker = cpu_cores(DEFAULT_WORKER_RESOURCES["requests"]["cpu"])
    assert 2 * 3 * (job + 2 * worker) <= 2.0
    assert 2 * (job + 3 * worker) <= 2.0
    memory = memory_bytes(DEFAULT_JOB_RESOURCES["requests"]["memory"]) + \
        2 * memory_bytes(DEFAULT_WORKER_RESOURCES["requests"]["memory"])
    assert 2 * 3 * memory <= 23 * 2**30


def test_defaults_are_not_shared_between_runs() -> None:
    a, b = RunSpec(), RunSpec()
    a.worker_resources["requests"]["cpu"] = "8"  # type: ignore[index]
    assert b.worker_resources["requests"]["cpu"] == "100m" and DEFAULT_WORKER_RESOURCES["requests"]["cpu"] == "100m"


def test_a_run_value_replaces_the_default_and_empty_means_none() -> None:
    spec = RunSpec(worker_resources={"limits": {"cpu": "2"}}, resources={})
    assert spec.worker_resources == {"limits": {"cpu": "2"}} and spec.resources == {}
    env = spec.to_env()
    assert json.loads(env["DOK_WORKER_RESOURCES"]) == {"limits": {"cpu": "2"}}
    assert RunSpec.from_env(env).worker_resources == {"limits": {"cpu": "2"}}
    assert RunSpec.from_env({"DOK_WORKER_RESOURCES": "{}"}).worker_resources == {}
    assert RunSpec.from_env({}).worker_resources == DEFAULT_WORKER_RESOURCES  # unset: the default
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("name", ["resources", "worker_resources"])
def test_request_above_limit_is_refused_early(name: str) -> None:
    with pytest.raises(RunSettingError, match=r"requests must not exceed limits \(memory: request 4Gi > limit 1Gi\)"):
        RunSpec(**{name: {"requests": {"memory": "4Gi"}, "limits": {"memory": "1Gi"}}})
    with pytest.raises(RunSettingError, match="DOK_WORKER_RESOURCES=.*requests must not exceed limits"):
        RunSpec.from_env({"DOK_WORKER_RESOURCES": '{"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}'})


def test_none_is_refused_where_a_run_is_specified_directly() -> None:
    """None means "unset" (the default) where settings are layered (from_env, the environment's run_spec); a
    RunSpec itself always has resources, {} being none."""
    with pytest.raises(RunSettingError, match="worker_resources=None: must be set"):
        RunSpec(worker_resources=None)
    assert RunSpec.from_env({}, overrides={"worker_resources": None}).worker_resources == DEFAULT_WORKER_RESOURCES


# -- GPUs as Dask worker resources ----------------------------------------------------------------------
def test_gpus_become_dask_worker_resources() -> None:
    from dok.core.resources import dask_worker_resources

    assert dask_worker_resources({"limits": {"nvidia.com/gpu": "2", "memory": "1Gi"}}) == {"GPU": 2.0}
    assert dask_worker_resources({"requests": {"amd.com/gpu": "1"}}) == {"GPU": 1.0}
    assert dask_worker_resources({"limits": {"memory": "1Gi"}}) == {}
    assert dask_worker_resources(None) == {}


def test_tasks_no_worker_can_run_are_named() -> None:
    from dok.core.resources import missing_task_resources

    needs = {"train": {"GPU": 1.0}, "prep": {"GPU": 0.5}}
    assert missing_task_resources(needs, {}) == ["task 'prep' needs GPU=0.5, a worker has GPU=0",
                                                 "task 'train' needs GPU=1, a worker has GPU=0"]
    assert missing_task_resources(needs, {"GPU": 1.0}) == []
    assert missing_task_resources(needs, {"GPU": 0.5}) == ["task 'train' needs GPU=1, a worker has GPU=0.5"]


def test_process_share_splits_a_pod_between_its_worker_processes() -> None:
    from dok.core.resources import process_share

    assert process_share(nthreads=4, memory_limit=4 * 2**30, resources={"GPU": 2.0}, processes=2) == \
        (2, 2 * 2**30, {"GPU": 1.0})
    assert process_share(nthreads=1, memory_limit=None, resources={}, processes=4) == (1, None, {})  # >= 1 thread
    assert process_share(nthreads=3, memory_limit=1000, resources={}, processes=1) == (3, 1000, {})
