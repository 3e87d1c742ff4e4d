"""Property tests (hypothesis): random DAGs run every task once and after all its upstreams; maps over
random lengths give the right results; on both executors."""

from __future__ import annotations

import os
import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dok.core import DaskExecutor, Flow, LocalExecutor, Parameter, task, unmapped

from helpers import FileLog

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", params=["local", "dask"])
def make_executor(request):
    if request.param == "local":
        return LocalExecutor
    client = request.getfixturevalue("dask_client")
    return lambda: DaskExecutor(client)


@st.composite
def dags(draw):
    """A random DAG: node i has data upstreams and state-only (wait_for) upstreams among nodes < i."""
    n = draw(st.integers(min_value=1, max_value=10))
    nodes = []
    for i in range(n):
        earlier = list(range(i))
        data = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        rest = [j for j in earlier if j not in data]
        wait = draw(st.lists(st.sampled_from(rest), unique=True, max_size=2)) if rest else []
        nodes.append((data, wait))
    return nodes


def expected_values(nodes):
    values = []
    for i, (data, _) in enumerate(nodes):
        values.append(i + sum(values[j] for j in data))
    return values


@given(nodes=dags())
@SETTINGS
def test_random_dag_runs_every_task_after_its_upstreams(make_executor, nodes):
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "log")

        @task
        def node(i, *upstream_values):
            log = FileLog(log_path)
            log.add(f"start {i}")
            log.add(f"end {i}")
            return i + sum(upstream_values)

        with Flow("dag") as flow:
            refs = []
            for i, (data, wait) in enumerate(nodes):
                refs.append(node(i, *[refs[j] for j in data], wait_for=[refs[j] for j in wait]))
        state = flow.run(executor=make_executor())
        assert state.is_successful(), state

        entries = FileLog(log_path).entries()
        starts = {int(t.split()[1]): when for when, t in entries if t.startswith("start")}
        ends = {int(t.split()[1]): when for when, t in entries if t.startswith("end")}
        assert sorted(starts) == list(range(len(nodes)))  # every task ran
        assert len(entries) == 2 * len(nodes)  # ... exactly once
        for i, (data, wait) in enumerate(nodes):
            for j in data + wait:
                assert starts[i] >= ends[j], f"node {i} started before its upstream {j} ended"
        values = expected_values(nodes)
        terminal = {i for i in range(len(nodes))} - {j for d, w in nodes for j in d + w}
        assert state.result == {refs[i].name: values[i] for i in terminal}


@task
def double(x):
    return 2 * x


@task
def plus(x, y):
    return x + y


@task
def identity(x):
    return x


@task
def collect(xs):
    return list(xs)


@given(items=st.lists(st.integers(min_value=-1000, max_value=1000), max_size=30), k=st.integers(-5, 5))
@SETTINGS
def test_map_over_random_lengths(make_executor, items, k):
    with Flow("maps") as flow:
        xs = Parameter("xs")
        over_literal = double.map(list(items))
        over_parameter = double.map(xs)
        over_result = double.map(identity(xs))
        map_of_map = plus.map(over_result, over_parameter)
        broadcast = plus.map(over_literal, unmapped(k))
        collect(over_literal)
        collect(map_of_map)
        collect(broadcast)
    state = flow.run(parameters={"xs": items}, executor=make_executor())
    assert state.is_successful(), state
    assert state.result == {
        "collect": [2 * x for x in items],
        "collect-2": [4 * x for x in items],
        "collect-3": [2 * x + k for x in items],
    }
    children = [name for name in state.task_states if re.fullmatch(r"double(-[23])?\[\d+\]", name)]
    assert len(children) == 3 * len(items)
