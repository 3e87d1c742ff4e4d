"""Map batching: the same States, results, retries and errors as one Dask task per child."""

from __future__ import annotations

import pytest

from dok.core import DaskExecutor, Flow, FlowDefinitionError, LocalExecutor, task
from dok.core.batching import BatchOutcome, batch_bounds, batch_item, concat_batches, resolve_batch_size
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
    assert concat_batches(ok) == [5, 6] and batch_item(ok, 5) == 6
    with pytest.raises(TaskFailed):
        concat_batches(ok, bad)
    with pytest.raises(TaskFailed):
        batch_item(bad, 1)
