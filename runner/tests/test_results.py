"""Handing results over: the store writer (file:// and memory://) and the loopback pick-up server."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid

import fsspec

from dok.core.results import RESULT_PATH, decode_payload
from dok.core.states import Failed, Success
from dok.runner.results import PickupServer, deliver, store_results

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def _state() -> Failed:
    return Failed(message="1 task failed", result={"d": {"k": [1, 2]}},
                  task_states={"d": Success(result={"k": [1, 2]}),
                               "boom": Failed(message="ValueError: x", traceback="Traceback ...\nValueError: x")})


def test_store_results_on_a_file_url(tmp_path) -> None:
    directory = store_results(f"file://{tmp_path}/runs", ID, _state())
    assert directory == f"file://{tmp_path}/runs/{ID}"
    payload = decode_payload((tmp_path / "runs" / ID / "result.pkl").read_bytes())
    assert payload.identifier == ID and payload.state.result == {"d": {"k": [1, 2]}}
    doc = json.loads((tmp_path / "runs" / ID / "state.json").read_text())
    assert doc["state"]["task_states"]["boom"]["traceback"].endswith("ValueError: x")


def test_deliver_to_memory_store_says_where() -> None:
    lines: list[str] = []
    location = f"memory://dok-test-{uuid.uuid4().hex}"
    assert deliver(state=_state(), identifier=ID, location=location, server=None, pickup_timeout=1.0,
                   say=lines.append)
    with fsspec.open(f"{location}/{ID}/result.pkl", "rb") as f:
        assert decode_payload(f.read()).state.message == "1 task failed"
    assert any(f"dok result {ID}" in line for line in lines)


def test_deliver_falls_back_to_the_pickup_when_the_store_fails() -> None:
    lines: list[str] = []
    server = PickupServer(port=0).start()
    try:
        got: dict[str, bytes] = {}
        t = threading.Thread(target=lambda: got.update(data=_get(server, wait=5)))
        t.start()
        ok = deliver(state=_state(), identifier=ID, location="file:///proc/dok-cannot-write-here", server=server,
                     pickup_timeout=5.0, say=lines.append)
        t.join(5)
    finally:
        server.close()
    assert ok and decode_payload(got["data"]).state.result == {"d": {"k": [1, 2]}}
    assert any("cannot write to file:///proc" in line for line in lines)
    assert any("picked up by the caller" in line for line in lines)


def test_pickup_long_poll_then_download() -> None:
    server = PickupServer(port=0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{RESULT_PATH}?wait=0.1", timeout=5) as r:
            assert r.status == 204 and r.read() == b""  # not ready yet: the client asks again
        assert not server.wait_picked_up(0.01)
        server.offer(b"payload bytes")
        assert _get(server, wait=1) == b"payload bytes"
        assert server.wait_picked_up(1) and server.picked_by == "127.0.0.1"
    finally:
        server.close()


def test_pickup_listens_on_loopback_only_and_answers_404_elsewhere() -> None:
    server = PickupServer(port=0).start()
    try:
        assert server.host == "127.0.0.1"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        else:
            raise AssertionError("expected 404")
    finally:
        server.close()


def test_nobody_picks_up_bounded_wait_is_said() -> None:
    lines: list[str] = []
    server = PickupServer(port=0).start()
    try:
        assert not deliver(state=_state(), identifier=ID, location=None, server=server, pickup_timeout=0.2,
                           say=lines.append)
    finally:
        server.close()
    assert any("waiting up to 0.2s" in line for line in lines)
    assert any("nobody picked them up within 0.2s" in line for line in lines)


def test_the_delivered_payload_carries_the_runners_exit_code() -> None:
    server = PickupServer(port=0).start()
    try:
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(_get(server, wait=5)))
        reader.start()
        lines: list[str] = []
        assert deliver(state=_state(), identifier=ID, location=None, server=server, pickup_timeout=5,
                       say=lines.append, exit_code=1)
        reader.join(5)
    finally:
        server.close()
    payload = decode_payload(got[0])
    assert payload.identifier == ID and payload.exit_code == 1


def _get(server: PickupServer, *, wait: float) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{RESULT_PATH}?wait={wait}", timeout=wait + 5) as r:
        return r.read()
