"""`--param k=v` parsing and checking against the flow's parameters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dok.core import Flow, Parameter
from dok.launcher.exceptions import UsageError
from dok.launcher.params import check_params, flow_parameter_names, parse_params, parse_value


@pytest.mark.parametrize("text,value", [("10", 10), ("1.5", 1.5), ("true", True), ("null", None),
                                        ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ('"10"', "10"),
                                        ("alice", "alice"), ("", ""), ("a=b", "a=b"), ("[1,", "[1,")])
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_parse_params():
    assert parse_params(["n=10", "name=alice", "eq=a=b", "empty="]) == {"n": 10, "name": "alice", "eq": "a=b",
                                                                         "empty": ""}


@pytest.mark.parametrize("item", ["n", "=3", " =3", "bad name=1", "1x=2"])
def test_malformed(item):
    with pytest.raises(UsageError):
        parse_params([item])


def test_repeated():
    with pytest.raises(UsageError, match="twice"):
        parse_params(["n=1", "n=2"])


def _flow(*names: str) -> Flow:
    with Flow("fanout") as flow:
        for name in names:
            Parameter(name, default=0)
    return flow


def test_check_params_unknown_names_allowed():
    flow = _flow("n", "sleep")
    check_params(flow, {"n": 1})
    with pytest.raises(UsageError) as info:
        check_params(flow, {"m": 1})
    assert "m" in info.value.message and "n, sleep" in info.value.hint and "'fanout'" in info.value.message
    with pytest.raises(UsageError, match="allowed parameters: none"):
        check_params(_flow(), {"m": 1})


def test_flow_parameter_names_sorted():
    assert flow_parameter_names(_flow("b", "a")) == ["a", "b"]
    assert flow_parameter_names(_flow()) == []


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
                       st.one_of(st.integers(), st.booleans(), st.text(alphabet="abc xyz", max_size=5))))
def test_round_trip_json_values(values):
    import json

    items = [f"{k}={json.dumps(v)}" for k, v in values.items()]
    assert parse_params(items) == values
