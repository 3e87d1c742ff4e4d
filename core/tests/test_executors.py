"""Run semantics, the same for LocalExecutor and DaskExecutor: results, maps, retries, timeouts,
failures and skips, progress callbacks, cancellation."""

from __future__ import annotations

import time

import pytest

from dok.core import (
    Cancelled,
    DaskExecutor,
    Failed,
    Flow,
    LocalExecutor,
    Parameter,
    Skipped,
    Success,
    TimedOut,
    task,
    unmapped,
)

from helpers import FileLog


@pytest.fixture(params=["local", "dask"])
def executor(request):
    if request.param == "local":
        return LocalExecutor()
    return DaskExecutor(request.getfixturevalue("dask_client"))


@task
def numbers(n):
    return list(range(n))


@task
def square(x, k=1):
    return x * x * k


@task
def total(xs):
    return sum(xs)


@task
def add(x, y):
    return x + y


@task
def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"bad value {x}")
    return x


def test_fan_out_and_reduce(executor):
    with Flow("fanout") as flow:
        n = Parameter("n", default=10)
        total(square.map(numbers(n), k=2))
    state = flow.run(parameters={"n": 20}, executor=executor)
    assert state.is_successful(), state
    assert state.result == {"total": 2 * sum(i * i for i in range(20))}
    assert state.task_states["square[19]"].is_successful()
    assert state.task_states["square"].is_successful()
    assert state.counts()["success"] == 23  # numbers, 20 children, the map, total
    assert state.start <= state.end


def test_map_variants(executor):
    with Flow("maps") as flow:
        n = Parameter("n", default=4)
        xs = Parameter("xs", default=[0, 1, 2, 3])
        over_literal = square.map([1, 2, 3])
        over_parameter = square.map(xs)
        over_result = square.map(numbers(n))
        map_of_map = add.map(over_result, over_parameter)
        s = total(over_literal)
        broadcast = add.map([1, 2], unmapped(s))
        with_kwarg = add.map([1, 2], y=s)
        refs_in_literal = add.map([s, n], [n, 1])
        empty = square.map([])
        total(empty)
        total(map_of_map)
    state = flow.run(parameters={"xs": range(4)}, executor=executor)
    assert state.is_successful(), state
    r = state.result
    assert r == {"total-2": 0, "total-3": 28, broadcast.name: [15, 16], with_kwarg.name: [15, 16],
                 refs_in_literal.name: [18, 5]}
    assert state.task_states[over_parameter.name].is_successful()
    assert state.task_states[map_of_map.name].is_successful()
    assert state.task_states[empty.name].is_successful()


def test_failure_is_recorded_and_downstream_skipped(executor):
    with Flow("fails") as flow:
        xs = fail_on.map([1, 2, 3], bad=unmapped(2))
        after = square.map(xs)  # child by child: only after[1] is skipped
        total(after)
        independent = square(7)
    state = flow.run(executor=executor)
    assert isinstance(state, Failed)
    ts = state.task_states
    failed = ts["fail_on[1]"]
    assert isinstance(failed, Failed)
    assert failed.exc_type == "ValueError" and failed.exc_message == "bad value 2"
    assert 'raise ValueError(f"bad value {x}")' in failed.traceback
    assert "runtime.py" not in failed.traceback.splitlines()[1]
    assert ts["fail_on[0]"].is_successful() and ts["fail_on[2]"].is_successful()
    assert isinstance(ts["square[1]"], Skipped) and ts["square[1]"].upstream == "fail_on[1]"
    assert ts["square[0]"].is_successful() and ts["square[2]"].is_successful()
    assert isinstance(ts["total"], Skipped) and ts["total"].upstream == "fail_on[1]"
    assert ts[independent.name].is_successful()
    assert "fail_on[1]" in state.message
    assert state.result == {independent.name: 49}  # the failed reduce has no result


def test_failed_map_has_no_result(executor):
    with Flow("failed-map") as flow:
        fail_on.map([1, 2], bad=unmapped(1))
    state = flow.run(executor=executor)
    assert state.result == {}
    assert state.task_states["fail_on"].is_failed() and "1 of 2 children failed" in state.task_states["fail_on"].message


def test_skip_propagates_transitively_and_through_wait_for(executor):
    @task
    def boom():
        raise RuntimeError("no")

    with Flow("chain") as flow:
        a = boom()
        b = square(a)
        c = square(b)
        d = square(5, wait_for=[c])
    state = flow.run(executor=executor)
    for ref in (b, c, d):
        st = state.task_states[ref.name]
        assert isinstance(st, Skipped), (ref.name, st)
        assert st.upstream == "boom"
        assert "boom" in st.message


def test_retries_then_success(executor, tmp_path):
    log = FileLog(tmp_path / "attempts")

    @task(max_retries=3, retry_delay=0.05)
    def flaky(x):
        log.add("attempt")
        if len(log.entries()) < 3:
            raise OSError("try again")
        return x

    with Flow("retry") as flow:
        flaky(1)
    state = flow.run(executor=executor)
    assert state.is_successful(), state
    times = [t for t, _ in log.entries()]
    assert len(times) == 3
    assert times[2] - times[0] >= 0.1  # two delays of 0.05 s


def test_retries_exhausted(executor, tmp_path):
    log = FileLog(tmp_path / "calls")

    @task(max_retries=2)
    def always(x):
        log.add("call")
        raise KeyError(x)

    with Flow("retry") as flow:
        always(1)
    st = flow.run(executor=executor).task_states["always"]
    assert isinstance(st, Failed) and st.attempts == 3 and len(log.entries()) == 3
    assert st.exc_type == "KeyError"


def test_timeout(executor):
    @task(timeout=0.2)
    def sleepy(s):
        time.sleep(s)
        return s

    with Flow("timeout") as flow:
        slow = sleepy(1.0)
        fast = sleepy(0.01)
        square(slow)
    t0 = time.time()
    state = flow.run(executor=executor)
    assert time.time() - t0 < 0.95  # did not wait for the slow call
    st = state.task_states[slow.name]
    assert isinstance(st, TimedOut) and st.is_failed() and st.timeout == 0.2
    assert "0.2 s" in st.message
    assert state.task_states[fast.name].is_successful()
    assert state.task_states["square"].is_skipped()


def test_progress_callback_sees_every_task_run(executor):
    seen = []
    with Flow("progress") as flow:
        total(square.map([1, 2, 3]))
    state = flow.run(executor=executor, on_task_state=lambda name, st: seen.append((name, st)))
    finished = {name for name, st in seen if st.is_finished()}
    assert finished == set(state.task_states) == {"square[0]", "square[1]", "square[2]", "square", "total"}
    order = [name for name, st in seen if st.is_finished()]
    assert order.index("total") > order.index("square[2]")


def test_success_states_have_timing(executor):
    @task
    def nap():
        time.sleep(0.05)
        return 1

    with Flow("timing") as flow:
        nap()
    st = flow.run(executor=executor).task_states["nap"]
    assert isinstance(st, Success)
    assert st.start is not None and st.end is not None and st.duration >= 0.04


def test_keyboard_interrupt_cancels_the_run(executor):
    @task
    def slow(x):
        time.sleep(0.3)
        return x

    def interrupt(name, st):
        if st.is_finished():
            raise KeyboardInterrupt

    with Flow("cancel") as flow:
        first = square(1)
        total(slow.map(list(range(4)), wait_for=[first]))
    state = flow.run(executor=executor, on_task_state=interrupt)
    assert isinstance(state, Cancelled), state
    assert "KeyboardInterrupt" in state.message
    assert state.task_states["square"].is_successful()
    assert isinstance(state.task_states["total"], Cancelled)


def test_map_over_non_iterable_result_fails_that_map(executor):
    with Flow("bad-map") as flow:
        bad = square.map(square(3))
        square(4)
    state = flow.run(executor=executor)
    st = state.task_states[bad.name]
    assert isinstance(st, Failed) and "cannot map over the result of 'square'" in st.message
    assert state.result["square-3"] == 16


def test_map_over_failed_upstream_is_skipped(executor):
    with Flow("skip-map") as flow:
        up = fail_on([1], [1])
        m = square.map(up)
        total(m)
    state = flow.run(executor=executor)
    assert state.task_states["fail_on"].is_failed()
    assert state.task_states[m.name].is_skipped() and state.task_states[m.name].upstream == "fail_on"
    assert state.task_states["total"].upstream == "fail_on"


def test_empty_flow(executor):
    state = Flow("empty").run(executor=executor)
    assert state.is_successful() and state.result == {} and state.task_states == {}


def test_indexing_a_result(executor):
    @task
    def pair():
        return {"a": [1, 2, 3], "b": 10}

    with Flow("getitem") as flow:
        p = pair()
        first = p["a"][0]
        add(first, p["b"])
        square.map(p["a"])
    state = flow.run(executor=executor)
    assert state.is_successful(), state
    assert state.result == {"add": 11, "square": [1, 4, 9]}
    assert {"getitem", "getitem-2", "getitem-3", "getitem-4"} <= set(state.task_states)
