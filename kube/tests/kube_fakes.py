"""Test stand-ins for what `dok.kube` talks to, shared by the kube, launcher and runner tests (`//kube:testing`):
scripted kubernetes client APIs behind a real `Kube` (no cluster, no sleeping), a kubeconfig for an API server
where nothing listens, and fake port-forward streams (a socketpair whose far end is a tiny server thread)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from dok.kube import Hints, Kube, RetryPolicy


# -- scripted client APIs ---------------------------------------------------------------------------------------
class Resp:
    """A raw (`_preload_content=False`) response: `.data` is the JSON body."""

    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode()


def api_error(status: int, message: str = "nope") -> ApiException:
    """The client's error for an HTTP status, with the API's JSON `message`."""
    error = ApiException(status=status, reason="x")
    error.body = json.dumps({"message": message})
    return error


def refused() -> urllib3.exceptions.NewConnectionError:
    """What the client raises when nothing listens at the API server's address."""
    return urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]


class ScriptedApi:
    """A client API (CoreV1Api, BatchV1Api, ...) whose methods are the keyword arguments: each call is recorded in
    `calls` as (method, args, kwargs) and pops the method's next outcome: an exception is raised, a callable is
    called with the call's arguments and its value answered, anything else is answered as the JSON body.
    Methods without a script do not exist (AttributeError)."""

    def __init__(self, **scripts: list[Any]) -> None:
        self.scripts = {method: list(outcomes) for method, outcomes in scripts.items()}
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Callable[..., Resp]:
        if method.startswith("_") or method not in self.scripts:
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Resp:
            self.calls.append((method, args, kwargs))
            outcome = self.scripts[method].pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return Resp(outcome(*args, **kwargs) if callable(outcome) else outcome)
        return call


def scripted_kube(*, hints: Hints, budget: float = 5.0, **apis: Any) -> tuple[Kube, list[float]]:
    """A `Kube` on the given APIs (core=, batch=, authz=, ...) retrying with short backoffs inside `budget`
    seconds of a fake clock that only its own sleeps advance; the sleeps list is returned with it."""
    sleeps: list[float] = []
    kube = Kube(host="https://fake:6443", retry=RetryPolicy(initial=0.1, maximum=1.0, budget=budget),
                sleep=sleeps.append, clock=lambda: sum(sleeps), hints=hints, **apis)
    return kube, sleeps


# -- kubeconfig ------------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_kubeconfig(directory: Path, *, namespace: str = "team-a") -> tuple[Path, int]:
    """(path, port): a kubeconfig in `directory` (token user, context namespace `namespace`) whose API server is
    https://127.0.0.1:<port>, where nothing listens: connecting is refused at once."""
    port = free_port()
    path = directory / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: {namespace}}}}}]
current-context: x
""")
    return path, port


# -- port-forward streams ---------------------------------------------------------------------------------------
class FakeStream:
    """What `Kube.open_port_forward` returns: socket(port) is the near end of a socketpair whose far end `serve`
    handles on a thread; error(port) is the pod's error channel."""

    def __init__(self, serve: Callable[[socket.socket], None], *, port: int, error: str | None = None) -> None:
        self.port = port
        self.ours, theirs = socket.socketpair()
        self._error = error
        self.closed = False
        threading.Thread(target=serve, args=(theirs,), daemon=True).start()

    def socket(self, port: int) -> socket.socket:
        assert port == self.port
        return self.ours

    def error(self, port: int) -> str | None:
        return self._error

    def close(self) -> None:
        self.closed = True
        self.ours.close()


def http_server(conn: socket.socket) -> None:
    """Answers one HTTP request with 200 and a body naming the path ("pod says /x"), then closes."""
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        path = data.split(b" ")[1]
        body = b"pod says " + path
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
