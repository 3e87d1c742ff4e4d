"""Map batching: the same States, results, retries and errors as one Dask task per child."""

from __future__ import annotations

import pytest

from dok.core import DaskExecutor, Flow, FlowDefinitionError, LocalExecutor, task
from dok.core.batching import BatchOutcome, batch_bounds, batch_item, concat_parts, resolve_batch_size
from dok.core.runtime import TaskFailed

calls: dict[int, int] = {}


@task(batch_size=7)
def inc(x):
    return x + 1


@task(batch_size="auto")
def double(x):
    return 2 * x


@task
def plain_double(x):
    return 2 * x


@task(batch_size=5)
def picky(x):
    if x % 10 == 3:
        raise ValueError(f"no {x}")
    return x


@task
def total(xs):
    return sum(xs)


def flaky_factory():
    attempts: dict[int, int] = {}

    @task(batch_size=4, max_retries=2)
    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x == 5 and attempts[x] < 2:
            raise RuntimeError("first attempt fails")
        return x

    return flaky


def states_by_kind(state):
    out: dict[str, set[str]] = {}
    for name, s in state.task_states.items():
        out.setdefault(type(s).__name__, set()).add(name)
    return out


def test_batched_map_reduce_and_per_item_results(dask_client):
    with Flow("batched") as flow:
        a = inc.map(list(range(100)))
        b = double.map(a)  # follows a's batches (aligned), "auto" notwithstanding
        c = plain_double.map(a)  # not batched: per-item getitem from a's batches
        total(b)
        total(c)
    state = flow.run(executor=DaskExecutor(dask_client, fetch="all"))
    assert state.is_successful(), state
    expected = sum(2 * (x + 1) for x in range(100))
    totals = sorted(s.result for n, s in state.task_states.items() if n.startswith("total"))
    assert totals == [expected, expected]
    assert state.task_states["inc[41]"].result == 42 and state.task_states["inc[41]"].is_successful()
    assert state.task_states["double[99]"].result == 200
    assert state.task_states["plain_double[0]"].result == 2
    assert state.task_states["inc"].result == [x + 1 for x in range(100)]
    assert len([n for n in state.task_states if n.startswith("inc[")]) == 100


def test_same_states_as_unbatched_with_failures(dask_client):
    with Flow("failing") as flow:
        p = picky.map(list(range(30)))
        d = double.map(p)
        total(p)
    batched = flow.run(executor=DaskExecutor(dask_client))
    local = flow.run(executor=LocalExecutor())
    assert states_by_kind(batched) == states_by_kind(local)
    bad = batched.task_states["picky[13]"]
    assert bad.is_failed() and "no 13" in str(bad) and "ValueError" in (bad.traceback or "")
    assert batched.task_states["double[13]"].is_skipped()
    assert batched.task_states["double[13]"].upstream == "picky[13]"
    assert batched.task_states["total"].upstream == "picky[3]"  # the first failed item, as unbatched
    assert batched.task_states["double[12]"].is_successful()
    assert batched.task_states["total"].is_skipped()
    assert not batched.is_successful()
    del d


def test_retries_apply_per_item_inside_a_batch(dask_client):
    flaky = flaky_factory()
    with Flow("retry") as flow:
        total(flaky.map(list(range(10))))
    state = flow.run(executor=DaskExecutor(dask_client))
    assert state.is_successful(), state
    assert state.result == {"total": 45}


def test_batch_size_is_validated():
    with pytest.raises(FlowDefinitionError, match="batch_size"):
        task(batch_size=0)(lambda x: x)
    with pytest.raises(FlowDefinitionError, match="batch_size"):
        task(batch_size="big")(lambda x: x)


def test_pure_helpers():
    assert resolve_batch_size(None, 1000, 4) == 1
    assert resolve_batch_size(10, 5, 4) == 5
    assert resolve_batch_size("auto", 10, 4) == 1  # small maps stay unbatched
    assert resolve_batch_size("auto", 10_000, 2) == 625  # 16 batches at least
    assert resolve_batch_size("auto", 10_000, 20) == 125  # 4 per thread
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    ok = BatchOutcome(lo=4, values=[5, 6])
    bad = BatchOutcome(lo=0, values=[1, None], failed={1: {"key": ("p", 1), "task": "t[1]"}})
    assert concat_parts("b", ok) == [5, 6] and batch_item(ok, 5) == 6
    assert concat_parts("vb", 4, ok) == [4, 5, 6]
    with pytest.raises(TaskFailed):
        concat_parts("bb", ok, bad)
    with pytest.raises(TaskFailed):
        batch_item(bad, 1)


@task
def tiny(x):
    return x + 1


@task
def tiny_picky(x):
    if x == 1500:
        raise ValueError("no 1500")
    return x


@task
def sleepy(x):
    import time as _t

    _t.sleep(0.02)
    return x


def dask_task_count(client, prefix_word):
    def count(dask_scheduler=None):
        return sum(1 for k in dask_scheduler.tasks if prefix_word in str(k))
    return client.run_on_scheduler(count)


def test_measured_layout_batches_tiny_children_and_keeps_per_item_states(dask_client):
    from dok.core.dask_maps import PROBE_COUNT, PROBE_MIN

    n = max(2000, PROBE_MIN)
    with Flow("measured") as flow:
        a = tiny.map(list(range(n)))
        b = double.map(a)  # follows a's layout (singles for the probes, batches after)
        total(b)
    seen: list[str] = []
    run = DaskExecutor(dask_client, fetch="all")
    state = flow.run(executor=run, on_task_state=lambda name, s: seen.append(name))
    assert state.is_successful(), state
    assert state.task_states["total"].result == sum(2 * (x + 1) for x in range(n))
    assert state.task_states[f"tiny[{n - 1}]"].result == n
    assert state.task_states[f"double[{PROBE_COUNT + 5}]"].result == 2 * (PROBE_COUNT + 6)
    assert len([s for s in seen if s.startswith("tiny[")]) == n  # one State per child, reported once


def test_measured_layout_failure_is_per_item(dask_client):
    with Flow("measured-fail") as flow:
        p = tiny_picky.map(list(range(2000)))
        total(p)
    state = flow.run(executor=DaskExecutor(dask_client))
    assert state.task_states["tiny_picky[1500]"].is_failed()
    assert "no 1500" in str(state.task_states["tiny_picky[1500]"])
    assert state.task_states["tiny_picky[1499]"].is_successful()
    assert state.task_states["total"].upstream == "tiny_picky[1500]"


def test_measured_layout_keeps_slow_children_one_per_task():
    from dok.core.dask_maps import measured_batch_size

    assert measured_batch_size(0.02, 1000, 4) == 1  # 20 ms: not tiny
    assert measured_batch_size(None, 1000, 4) == 1  # unmeasured
    assert measured_batch_size(0.0001, 10_000, 2) == 625  # bounded by spreading over >= 16 batches
    assert measured_batch_size(0.001, 100_000, 64) == 100  # ~0.1 s of work per batch
