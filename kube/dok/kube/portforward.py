"""Port-forwarding to a pod through the API server: a local TCP port relayed to a port of a pod.

    with PortForward(kube, namespace="ns", pod="run-x-job-abc", port=8787) as fwd:
        print(fwd.url("/status"))          # http://127.0.0.1:<local port>/status
        urllib.request.urlopen(fwd.url("/")).read()

What `kubectl port-forward` does, for dok's callers (the dashboard, the result pick-up): a listening socket on
`host` (loopback by default; `local_port=0` picks a free port); each accepted connection opens one
port-forward stream to the pod (`Kube.open_port_forward`, the API server's `pods/portforward` subresource
over a websocket) and bytes are relayed both ways until either side closes. Nothing goes to the pod's IP
directly: the traffic flows caller -> API server -> kubelet -> pod, so it works from outside the cluster's
network and is subject to the caller's RBAC.

Checks before the port is opened, each a clear error with a hint (`dok.kube.exceptions`):
- the caller may `create pods/portforward` in the namespace (SelfSubjectAccessReview) -> `Forbidden`;
- the pod exists -> `NotFound`, and is running -> `PodNotRunning`.
A stream that fails later (the pod ended, nothing listens on the port) closes that one connection; its
reason is kept in `errors` (the caller sees an empty reply / a reset, as with kubectl).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from .client import Access, Kube
from .exceptions import Forbidden, KubeError, NotFound

logger = logging.getLogger(__name__)

CHUNK = 65536
SELECT_TIMEOUT = 0.5     # seconds between checks that the forward is still open


class PodNotRunning(KubeError):
    """The pod exists but is not Running, so nothing can be forwarded to it."""


def check_forwardable(kube: Kube, *, namespace: str, pod: str, check_access: bool = True) -> None:
    """Raise Forbidden / NotFound / PodNotRunning unless `pod` can be port-forwarded to by the caller."""
    if check_access:
        access = Access(verb="create", resource="pods", subresource="portforward", namespace=namespace)
        allowed, reason = kube.can_i(access)
        if not allowed:
            raise Forbidden(f"you may not {access}" + (f" ({reason})" if reason else ""),
                            hint="ask a cluster admin for a Role with verb 'create' on 'pods/portforward' in "
                                 f"namespace {namespace} (kubectl port-forward needs the same right)")
    obj = kube.read("Pod", namespace, pod)
    if obj is None:
        raise NotFound(f"pod {namespace}/{pod} does not exist", hint="the run may have finished and been cleaned "
                       "up; `dok status ID` shows what is left")
    phase = (obj.get("status") or {}).get("phase") or "Unknown"
    if phase != "Running" or (obj.get("metadata") or {}).get("deletionTimestamp"):
        state = "being deleted" if (obj.get("metadata") or {}).get("deletionTimestamp") else phase
        raise PodNotRunning(f"pod {namespace}/{pod} is {state}, not Running: nothing to forward to",
                            hint="forwarding works only while the pod runs")


class PortForward:
    """A local port relayed to `port` of `pod` (see the module docstring). Use as a context manager or call
    `start()` / `close()`. `open_stream` replaces `kube.open_port_forward` (tests)."""

    def __init__(self, kube: Kube | None, *, namespace: str, pod: str, port: int, local_port: int = 0,
                 host: str = "127.0.0.1", check: bool = True, quiet: bool = False,
                 open_stream: Callable[[], Any] | None = None) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is not a TCP port")
        self.kube, self.namespace, self.pod, self.port = kube, namespace, pod, port
        self.host, self.requested_port, self.check, self.quiet = host, local_port, check, quiet
        self._open_stream = open_stream or (lambda: kube.open_port_forward(namespace, pod, port))  # type: ignore[union-attr]
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._sockets: set[Any] = set()
        self.errors: list[str] = []
        self.connections = 0

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> PortForward:
        if self.check and self.kube is not None:
            check_forwardable(self.kube, namespace=self.namespace, pod=self.pod)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
        except OSError as exc:
            listener.close()
            raise KubeError(f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}",
                            hint="pick another local port (e.g. --port 0 for any free port)") from None
        listener.listen(16)
        listener.settimeout(SELECT_TIMEOUT)
        self._listener = listener
        self._spawn(self._accept_loop, "accept")
        return self

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            _close(s)
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join(timeout=2)

    def __enter__(self) -> PortForward:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what callers use ----------------------------------------------------------------------------------
    @property
    def local_port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the forward is not started")
        return int(self._listener.getsockname()[1])

    def url(self, path: str = "/", *, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.local_port}/{path.lstrip('/')}"

    # -- relaying ------------------------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"dok-forward-{name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.connections += 1
            self._spawn(self._relay, f"conn{self.connections}", conn)

    def _relay(self, conn: socket.socket) -> None:
        stream = None
        try:
            try:
                stream = self._open_stream()
            except Exception as exc:  # noqa: BLE001 - this connection fails, the forward stays
                self._error(f"cannot open a stream to {self.namespace}/{self.pod}:{self.port}: {exc}")
                return
            remote = stream.socket(self.port)
            with self._lock:
                self._sockets.update((conn, remote))
            _pump(conn, remote, self._closed)
            error = stream.error(self.port)
            if error:
                self._error(f"{self.namespace}/{self.pod}:{self.port}: {error.strip()}")
        finally:
            _close(conn)
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            with self._lock:
                self._sockets.discard(conn)

    def _error(self, message: str) -> None:
        """A stream's error: logged as a warning, or kept in `errors` only when `quiet` (a caller that retries
        and reports on its own, like the result pick-up)."""
        (logger.debug if self.quiet else logger.warning)("port-forward: %s", message)
        self.errors.append(message)


def _pump(a: Any, b: Any, closed: threading.Event) -> None:
    """Copy bytes both ways between sockets `a` and `b` until one side closes (half-closes are passed on)."""
    peers = {a: b, b: a}
    open_ends = {a, b}
    while open_ends and not closed.is_set():
        try:
            readable, _, _ = select.select(list(open_ends), [], [], SELECT_TIMEOUT)
        except (OSError, ValueError):
            return
        for s in readable:
            try:
                data = s.recv(CHUNK)
            except OSError:
                data = b""
            peer = peers[s]
            if not data:
                open_ends.discard(s)
                with contextlib.suppress(OSError):
                    peer.shutdown(socket.SHUT_WR)
                if s is b:
                    return  # the pod's side ended: nothing more will come
                continue
            try:
                peer.sendall(data)
            except OSError:
                return


def _close(s: Any) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
