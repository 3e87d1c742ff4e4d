"""Building flows: graph, names, parameters, and the build-time errors."""

from __future__ import annotations

import datetime as dt

import pytest

from dok.core import (
    Flow,
    FlowDefinitionError,
    Parameter,
    ParameterError,
    task,
    unmapped,
)


@task
def add(x, y=0):
    return x + y


@task(name="inc")
def increment(x):
    return x + 1


@task
def total(xs):
    return sum(xs)


def test_calling_a_task_builds_the_graph_without_running_it():
    calls = []

    @task
    def record(x):
        calls.append(x)
        return x

    with Flow("f") as flow:
        ref = record(1)
    assert calls == []
    assert ref.name == "record"
    assert flow.task_names == ["record"]


def test_run_names_are_stable_and_unique():
    with Flow("f") as flow:
        a = add(1, 2)
        b = add(a, 3)
        c = add(b, 4)
        m = increment.map([1, 2, 3])
    assert [a.name, b.name, c.name, m.name] == ["add", "add-2", "add-3", "inc"]
    assert flow.run().task_states.keys() >= {"add", "add-2", "add-3", "inc", "inc[0]", "inc[2]"}


def test_task_options_and_plain_function_access():
    @task(max_retries=3, retry_delay=dt.timedelta(milliseconds=250), timeout=2)
    def slow(x):
        return x

    assert slow.max_retries == 3
    assert slow.retry_delay == 0.25
    assert slow.timeout == 2.0
    assert slow.fn(5) == 5
    assert slow.__name__ == "slow"


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"retry_delay": "1s"}, "retry_delay"),
        ({"timeout": 0}, "timeout"),
        ({"name": ""}, "task name"),
        ({"name": "a[1]"}, "task name"),
    ],
)
def test_bad_task_options_are_refused(options, fragment):
    with pytest.raises(FlowDefinitionError, match=fragment):
        task(lambda x: x, **options)


def test_task_called_outside_a_flow():
    with pytest.raises(FlowDefinitionError, match=r"task 'add'.*outside a `with Flow"):
        add(1, 2)
    with pytest.raises(FlowDefinitionError, match="outside"):
        increment.map([1])
    with pytest.raises(FlowDefinitionError, match=r"Parameter\('n'\).*outside"):
        Parameter("n")


def test_wrong_arguments_are_refused_at_build_time():
    with Flow("f"):
        with pytest.raises(FlowDefinitionError, match=r"task 'add'.*add\(x, y=0\)"):
            add(1, 2, 3)
        with pytest.raises(FlowDefinitionError, match="unexpected keyword"):
            add(1, z=2)


def test_cycle_is_refused_naming_the_tasks():
    with Flow("f") as flow:
        a = add(1)
        b = add(a)
        c = add(b)
        with pytest.raises(FlowDefinitionError, match=r"cycle: add-3 -> add -> add-2 -> add-3"):
            a.set_upstream(c)
    flow.validate()  # the refused edge was not added


def test_results_of_another_flow_are_refused():
    with Flow("one"):
        a = add(1)
    with Flow("two"):
        with pytest.raises(FlowDefinitionError, match=r"from another flow \('one'\)"):
            add(a)


def test_refs_cannot_be_used_as_values_while_building():
    with Flow("f"):
        a = add(1)
        with pytest.raises(FlowDefinitionError, match="condition"):
            if a:
                pass
        with pytest.raises(FlowDefinitionError, match=r"\.map"):
            for _ in a:
                pass


def test_map_argument_errors():
    with Flow("f"):
        with pytest.raises(FlowDefinitionError, match="not iterable"):
            increment.map(5)
        with pytest.raises(FlowDefinitionError, match="is a str"):
            increment.map("abc")
        with pytest.raises(FlowDefinitionError, match="different lengths"):
            add.map([1, 2], [1, 2, 3])
        with pytest.raises(FlowDefinitionError, match="at least one positional"):
            add.map(unmapped(1))


def test_parameters_defaults_and_errors():
    with Flow("f") as flow:
        n = Parameter("n", default=3)
        k = Parameter("k")
        add(n, k)
        with pytest.raises(ParameterError, match="already has a parameter named 'n'"):
            Parameter("n")
    assert n.default == 3 and not n.required and k.required
    assert flow.resolve_parameters({"k": 1}) == {"n": 3, "k": 1}
    with pytest.raises(ParameterError, match=r"needs a value for parameter\(s\) 'k'"):
        flow.run()
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'nn'.*its parameters are: k, n"):
        flow.run(parameters={"nn": 1, "k": 1})
    with pytest.raises(ParameterError, match="must be a dict"):
        flow.run(parameters=[("k", 1)])
    assert flow.run(parameters={"k": 10}).result == {"add": 13}


def test_parameter_name_clash_with_task():
    with Flow("f"):
        add(1)
        with pytest.raises(ParameterError, match="clashes"):
            Parameter("add")


def test_reference_tasks_are_the_terminal_ones():
    with Flow("f") as flow:
        a = add(1)
        b = add(a)
        c = increment(a)
        c.set_upstream(b)
        d = total(increment.map([1, 2]))
    assert [n.name for n in flow.reference_nodes()] == ["inc", "total"]
    assert d.name == "total"


def test_flow_needs_a_name():
    with pytest.raises(FlowDefinitionError, match="name"):
        Flow("")


def test_wait_for_validation():
    with Flow("f"):
        a = add(1)
        with pytest.raises(FlowDefinitionError, match="wait_for"):
            add(2, wait_for=[1])
        b = add(2, wait_for=a)
    assert b.node.wait_for == [a.index]


# -- @task(resources=...) -----------------------------------------------------------------------------------
def test_task_resources_are_checked_and_listed() -> None:
    from dok.core.exceptions import FlowDefinitionError
    from dok.core.flow import Flow, task, task_resources

    @task(resources={"GPU": 1})
    def train() -> int:
        return 1

    @task
    def plain() -> int:
        return 2

    with Flow("gpu") as flow:
        train()
        plain()
    assert task_resources(flow) == {"train": {"GPU": 1.0}}
    for bad in ({}, {"GPU": 0}, {"GPU": "1"}, ["GPU"], {"GPU": True}):
        with pytest.raises(FlowDefinitionError, match="resources must map resource names"):
            task(resources=bad)(lambda: 1)


def test_initial_width_counts_the_task_runs_ready_at_the_start():
    from dok.core import Parameter

    with Flow("w") as flow:
        n = Parameter("n", default=[1, 2, 3])
        fan = add.map([1, 2, 3, 4, 5])        # 5 ready at once
        over_param = add.map(n)               # as many as the parameter's value has
        single = add(1)                       # 1
        add(single)                           # waits for a task: not ready at the start
        add.map(fan)                          # maps over a task's result: not ready at the start
        add.map([], y=unmapped(2))            # an empty map: 0
        add(n, y=over_param)                  # waits for a task
    assert flow.initial_width() == 5 + 3 + 1
    assert flow.initial_width({"n": list(range(10))}) == 5 + 10 + 1
    with Flow("one") as one:
        add(1)
    assert one.initial_width() == 1
