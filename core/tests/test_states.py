"""States: predicates, to_dict/state_from_dict, and the size-bounded summary."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dok.core import (
    Cancelled,
    Failed,
    Flow,
    Pending,
    Running,
    Skipped,
    StateKind,
    Success,
    TimedOut,
    decode_summary,
    encode_summary,
    state_from_dict,
    task,
)


def test_predicates():
    assert Success().is_successful() and Success().is_finished()
    assert Failed().is_failed() and not Failed().is_successful()
    assert TimedOut().is_failed() and TimedOut().is_timed_out() and isinstance(TimedOut(), Failed)
    assert Skipped(upstream="a").is_skipped() and Skipped().is_finished()
    assert Cancelled().is_cancelled() and Cancelled().is_finished()
    assert Pending().is_pending() and not Pending().is_finished()
    assert Running().is_running() and not Running().is_finished()
    assert Success(start=1.0, end=3.5).duration == 2.5 and Success().duration is None
    with pytest.raises(TypeError):
        Success("positional message")  # keyword-only


texts = st.text(max_size=300)
times = st.none() | st.floats(min_value=0, max_value=2e9, allow_nan=False)
json_results = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def task_states(draw):
    kind = draw(st.sampled_from(["success", "failed", "timed_out", "skipped", "cancelled"]))
    common = {"message": draw(texts), "start": draw(times), "end": draw(times)}
    if kind == "success":
        return Success(result=draw(json_results), **common)
    if kind == "failed":
        return Failed(exc_type=draw(st.sampled_from(["ValueError", "KeyError"])), exc_message=draw(texts),
                      traceback=draw(st.text(max_size=5000)), attempts=draw(st.integers(1, 5)), **common)
    if kind == "timed_out":
        return TimedOut(timeout=draw(st.floats(0.1, 100)), traceback=draw(texts), **common)
    if kind == "skipped":
        return Skipped(upstream=draw(st.text(min_size=1, max_size=30)), **common)
    return Cancelled(**common)


names = st.text(min_size=1, max_size=40)


@st.composite
def flow_states(draw):
    tasks = draw(st.dictionaries(names, task_states(), max_size=40))
    cls = draw(st.sampled_from([Success, Failed, Cancelled]))
    results = draw(st.dictionaries(names, json_results | st.builds(object), max_size=10))
    return cls(message=draw(texts), start=draw(times), end=draw(times), task_states=tasks, result=results)


@given(state=task_states())
@settings(max_examples=100, deadline=None)
def test_to_dict_round_trip(state):
    d = state.to_dict()
    assert json.loads(json.dumps(d)) == d  # JSON-safe
    back = state_from_dict(d)
    assert back == state and type(back) is type(state)


@given(state=flow_states())
@settings(max_examples=50, deadline=None)
def test_flow_state_to_dict_round_trip(state):
    back = state_from_dict(json.loads(json.dumps(state.to_dict())))
    assert type(back) is type(state)
    assert back.task_states == state.task_states
    assert back.counts() == state.counts()


def test_non_json_results_come_back_as_repr():
    class Thing:
        def __repr__(self):
            return "Thing()"

    d = Success(result=Thing()).to_dict()
    assert d["result_repr"] == "Thing()"
    assert state_from_dict(d).result == "Thing()"


def test_state_from_dict_rejects_garbage():
    with pytest.raises(ValueError, match="no 'kind'"):
        state_from_dict({"message": "x"})
    with pytest.raises(ValueError, match="unknown State kind 'exploded'"):
        state_from_dict({"kind": "exploded"})


@given(state=flow_states(), max_bytes=st.integers(64, 5000))
@settings(max_examples=100, deadline=None)
def test_summary_always_fits_and_keeps_the_kind(state, max_bytes):
    text = encode_summary(state, max_bytes=max_bytes)
    assert len(text.encode("utf-8")) <= max_bytes
    back = decode_summary(text)
    assert back.kind is state.kind


def test_summary_keeps_the_important_parts():
    @task
    def boom(x):
        raise ValueError("x" * 10_000)

    @task
    def ok(x):
        return list(range(x))

    with Flow("summary") as flow:
        boom(1)
        ok(2000)
    state = flow.run()
    text = encode_summary(state)
    assert len(text.encode()) <= 4096
    back = decode_summary(text)
    assert isinstance(back, Failed)
    assert back.counts() == {"failed": 1, "success": 1}
    assert isinstance(back.task_states["boom"], Failed) and back.task_states["boom"].message.startswith("ValueError")
    assert back.result["ok"].startswith("[0, 1, 2")  # a truncated repr
    assert "boom" in back.message


def test_summary_of_a_huge_flow_still_fits():
    tasks = {f"t[{i}]": Failed(message="E: " + "y" * 1000, traceback="z" * 5000) for i in range(500)}
    state = Failed(message="500 failed " * 100, task_states=tasks, result={f"r{i}": "v" * 1000 for i in range(50)})
    text = encode_summary(state, max_bytes=4096)
    assert len(text) <= 4096
    back = decode_summary(text)
    assert back.kind is StateKind.FAILED and back.counts() == {"failed": 500}
    assert back.task_states  # at least one failed task kept


def test_decode_summary_rejects_garbage():
    with pytest.raises(ValueError, match="invalid JSON"):
        decode_summary("not json")
    with pytest.raises(ValueError, match="no 'k'"):
        decode_summary("{}")
    with pytest.raises(ValueError, match="max_bytes"):
        encode_summary(Success(), max_bytes=10)

