"""PortForward's relay and checks, with a fake stream (a socketpair whose far end is a tiny server)."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from dok.kube import Forbidden, NotFound, PodNotRunning, PortForward, check_forwardable
from dok.kube.client import Access
from kube_fakes import FakeStream, http_server


def big_echo(conn: socket.socket) -> None:
    """Echo until the caller half-closes."""
    with conn:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            conn.sendall(chunk)


def test_each_connection_gets_its_own_stream_and_bytes_flow_both_ways() -> None:
    streams: list[FakeStream] = []

    def open_stream() -> FakeStream:
        streams.append(FakeStream(http_server, port=8787))
        return streams[-1]

    with PortForward(None, namespace="ns", pod="p", port=8787, open_stream=open_stream) as fwd:
        assert fwd.url("/status").startswith("http://127.0.0.1:") and fwd.local_port > 0
        bodies = [urllib.request.urlopen(fwd.url(f"/page{i}"), timeout=10).read() for i in range(3)]
    assert bodies == [b"pod says /page0", b"pod says /page1", b"pod says /page2"]
    assert len(streams) == 3 and all(s.closed for s in streams)


def test_large_payloads_pass_intact() -> None:
    payload = bytes(range(256)) * 40_000  # ~10 MB
    with PortForward(None, namespace="ns", pod="p", port=9000,
                     open_stream=lambda: FakeStream(big_echo, port=9000)) as fwd:
        with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=10) as c:
            sender = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
            sender.join()
    assert bytes(got) == payload


def test_a_stream_that_cannot_open_fails_that_connection_only_and_says_why() -> None:
    calls = {"n": 0}

    def open_stream() -> FakeStream:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("handshake refused")
        return FakeStream(http_server, port=80)

    with PortForward(None, namespace="ns", pod="p", port=80, open_stream=open_stream) as fwd:
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(fwd.url("/a"), timeout=10).read()
        assert urllib.request.urlopen(fwd.url("/b"), timeout=10).read() == b"pod says /b"
    assert any("handshake refused" in e for e in fwd.errors)


def _errors_of_a_pod_that_closes_at_once(port: int, error: str, **options: Any) -> list[str]:
    """The forward's `errors` after one connection to a pod that closes it and reports `error`."""

    def silent(conn: socket.socket) -> None:
        conn.close()

    with PortForward(None, namespace="ns", pod="p", port=port, **options,
                     open_stream=lambda: FakeStream(silent, port=port, error=error)) as fwd:
        with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=10) as c:
            assert c.recv(10) == b""
        for _ in range(50):
            if fwd.errors:
                break
            threading.Event().wait(0.05)
    return fwd.errors


def test_the_pods_error_channel_is_kept() -> None:
    assert _errors_of_a_pod_that_closes_at_once(81, "connection refused on 81") == [
        "ns/p:81: connection refused on 81"]


def test_a_busy_local_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}") as info:
            PortForward(None, namespace="ns", pod="p", port=80, local_port=port, open_stream=lambda: None).start()
    assert "another local port" in (info.value.hint or "")


class FakeKube:
    def __init__(self, *, allowed: bool = True, pod: dict[str, Any] | None = None) -> None:
        self.allowed, self.pod, self.asked = allowed, pod, []

    def can_i(self, access: Access) -> tuple[bool, str]:
        self.asked.append(access)
        return self.allowed, "no RBAC rule"

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pod


def test_checks_rbac_then_the_pod() -> None:
    kube = FakeKube(allowed=False)
    with pytest.raises(Forbidden, match="create pods/portforward in namespace ns") as info:
        check_forwardable(kube, namespace="ns", pod="p")  # type: ignore[arg-type]
    assert "pods/portforward" in info.value.hint
    with pytest.raises(NotFound, match="pod ns/p does not exist"):
        check_forwardable(FakeKube(pod=None), namespace="ns", pod="p")  # type: ignore[arg-type]
    with pytest.raises(PodNotRunning, match="is Succeeded, not Running"):
        check_forwardable(FakeKube(pod={"status": {"phase": "Succeeded"}}), namespace="ns", pod="p")  # type: ignore[arg-type]
    with pytest.raises(PodNotRunning, match="being deleted"):
        check_forwardable(FakeKube(pod={"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}}),
                          namespace="ns", pod="p")  # type: ignore[arg-type]
    ok = FakeKube(pod={"status": {"phase": "Running"}})
    check_forwardable(ok, namespace="ns", pod="p")  # type: ignore[arg-type]
    assert ok.asked == [Access(verb="create", resource="pods", subresource="portforward", namespace="ns")]


def test_quiet_keeps_stream_errors_without_logging_them(caplog) -> None:
    import logging

    for quiet, logged in ((True, False), (False, True)):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="dok.kube.portforward"):
            errors = _errors_of_a_pod_that_closes_at_once(82, "refused on 82", quiet=quiet)
        assert errors == ["ns/p:82: refused on 82"]
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "refused on 82" in r.getMessage()]
        assert bool(warned) is logged
