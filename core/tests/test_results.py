"""The result payload (encode/decode), the JSON State document, and the result-location URL rules."""

from __future__ import annotations

import json
import threading

import pytest

from dok.core import DaskOnKubernetesEnvironment
from dok.core.exceptions import EnvironmentConfigError
from dok.core.results import (PAYLOAD_MAGIC, ResultLocationError, ResultPayloadError, backend_packages,
                              check_result_location, decode_payload, encode_payload, result_urls, scheme_of,
                              state_document)
from dok.core.runspec import RunSettingError, RunSpec
from dok.core.states import Failed, Success, flow_state

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def _state() -> Failed:
    big = b"x" * (5 * 1024 * 1024)
    tasks = {
        "blob": Success(result=big, start=1.0, end=2.0),
        "info": Success(result={"a": [1, 2], "b": {"c": None}}),
        "boom": Failed(message="ValueError: bad", exc_type="ValueError",
                       traceback="Traceback (most recent call last):\n  ...\nValueError: bad"),
    }
    return Failed(message="1 task failed", result={"blob": big, "info": tasks["info"].result}, task_states=tasks,
                  start=1.0, end=3.0)


def test_payload_round_trip_keeps_every_result_and_error() -> None:
    state = _state()
    data = encode_payload(state, identifier=ID)
    assert data.startswith(PAYLOAD_MAGIC)
    payload = decode_payload(data)
    assert payload.identifier == ID and payload.unpicklable == ()
    back = payload.state
    assert isinstance(back, Failed) and back.message == "1 task failed"
    assert back.result["blob"] == b"x" * (5 * 1024 * 1024)
    assert back.result["info"] == {"a": [1, 2], "b": {"c": None}}
    assert back.task_states["boom"].traceback.endswith("ValueError: bad")
    assert back.task_states["info"].result == {"a": [1, 2], "b": {"c": None}}


def test_unpicklable_result_becomes_its_repr_and_is_named() -> None:
    lock = threading.Lock()
    state = Success(result={"lock": lock, "n": 1}, task_states={"make": Success(result=lock), "n": Success(result=1)})
    payload = decode_payload(encode_payload(state, identifier=ID))
    assert payload.state.result["n"] == 1 and payload.state.result["lock"].startswith("<unpicklable lock")
    assert payload.state.task_states["make"].result.startswith("<unpicklable lock")
    assert set(payload.unpicklable) == {"make", "<flow>[lock]"}


def test_exit_code_travels_with_the_payload_and_is_none_when_not_said() -> None:
    state = Success(result={"n": 1}, task_states={"n": Success(result=1)})
    assert decode_payload(encode_payload(state, identifier=ID, exit_code=3)).exit_code == 3
    assert decode_payload(encode_payload(state, identifier=ID)).exit_code is None
    lock = threading.Lock()  # the repr fallback keeps it too
    odd = Success(result={"lock": lock}, task_states={"make": Success(result=lock)})
    assert decode_payload(encode_payload(odd, identifier=ID, exit_code=1)).exit_code == 1


@pytest.mark.parametrize("data", [b"", b"hello", b"\x80\x04K\x01.", PAYLOAD_MAGIC + b"garbage"])
def test_decode_refuses_what_is_not_a_payload(data: bytes) -> None:
    with pytest.raises(ResultPayloadError):
        decode_payload(data)


def test_decode_refuses_a_payload_without_a_state() -> None:
    import cloudpickle

    with pytest.raises(ResultPayloadError, match="no State"):
        decode_payload(PAYLOAD_MAGIC + cloudpickle.dumps({"state": 3}))


def test_state_document_is_json_with_reprs_for_binary_results() -> None:
    doc = json.loads(state_document(_state(), identifier=ID))
    assert doc["identifier"] == ID and doc["state"]["kind"] == "failed"
    assert doc["state"]["task_states"]["info"]["result"] == {"a": [1, 2], "b": {"c": None}}
    assert doc["state"]["task_states"]["boom"]["traceback"].endswith("ValueError: bad")
    assert "result_repr" in doc["state"]["task_states"]["blob"]


def test_flow_state_helper_round_trip() -> None:
    state = flow_state({"t": Success(result=41)}, results={"t": 41}, start=1.0, end=2.0)
    assert decode_payload(encode_payload(state, identifier=ID)).state.result == {"t": 41}


@pytest.mark.parametrize("url, normal", [
    ("s3://bucket/prefix/", "s3://bucket/prefix"),
    ("  gs://b  ", "gs://b"),
    ("file:///mnt/results", "file:///mnt/results"),
    ("memory://x", "memory://x"),
])
def test_good_locations(url: str, normal: str) -> None:
    assert check_result_location(url) == normal


@pytest.mark.parametrize("url, problem", [
    ("", "non-empty"),
    (None, "non-empty"),
    ("/tmp/results", "not a URL"),
    ("bucket/prefix", "not a URL"),
    ("s3://", "no bucket"),
    ("s3:///", "no bucket"),
    ("file://relative/dir", "absolute path"),
    ("https://example.org/x", "cannot be written"),
    ("s3://b/x\ny", "control character"),
])
def test_bad_locations_are_named(url: object, problem: str) -> None:
    with pytest.raises(ResultLocationError, match=problem) as info:
        check_result_location(url)
    assert info.value.exit_code == 2 and "s3://bucket/prefix" in (info.value.hint or "")


def test_backend_packages_per_scheme() -> None:
    assert backend_packages("s3://b/p") == ("s3fs",)
    assert backend_packages("gs://b/p") == ("gcsfs",)
    assert backend_packages("file:///x") == () and backend_packages(None) == ()
    assert scheme_of("S3://b".lower()) == "s3"


def test_result_urls() -> None:
    urls = result_urls("s3://bucket/runs/", ID)
    assert urls.directory == f"s3://bucket/runs/{ID}"
    assert urls.payload == f"s3://bucket/runs/{ID}/result.pkl" and urls.state == f"s3://bucket/runs/{ID}/state.json"


def test_run_settings() -> None:
    spec = RunSpec(result_location="s3://bucket/runs/", result_pickup_timeout=5)
    assert spec.result_location == "s3://bucket/runs" and spec.result_pickup_timeout == 5.0
    env = spec.to_env()
    assert env["DOK_RESULT_LOCATION"] == "s3://bucket/runs" and env["DOK_RESULT_PICKUP_TIMEOUT"] == "5"
    assert RunSpec.from_env(env).result_location == "s3://bucket/runs"
    assert "DOK_RESULT_LOCATION" not in RunSpec().to_env() and RunSpec().result_pickup_timeout is None
    with pytest.raises(RunSettingError, match="result_location.*not a URL"):
        RunSpec(result_location="bucket")
    with pytest.raises(RunSettingError, match="DOK_RESULT_LOCATION"):
        RunSpec.from_env({"DOK_RESULT_LOCATION": "nope"})
    with pytest.raises(RunSettingError, match="result_pickup_timeout"):
        RunSpec(result_pickup_timeout=-1)
    assert RunSpec().result_fetch == "reference" and RunSpec(result_fetch="all").to_env()["DOK_RESULT_FETCH"] == "all"
    with pytest.raises(RunSettingError, match="result_fetch='some': must be one of reference, all"):
        RunSpec(result_fetch="some")


def test_environment_carries_the_location() -> None:
    env = DaskOnKubernetesEnvironment(result_location="s3://bucket/runs/")
    assert env.result_location == "s3://bucket/runs"
    assert DaskOnKubernetesEnvironment.from_dict(env.to_dict()) == env
    assert env.run_spec().result_location == "s3://bucket/runs"
    assert env.run_spec(result_location="file:///mnt/r").result_location == "file:///mnt/r"
    with pytest.raises(EnvironmentConfigError, match="result_location"):
        DaskOnKubernetesEnvironment(result_location="results/")
