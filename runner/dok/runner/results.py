"""Handing the run's full results to the caller: written to the result location, or picked up by the client.

The payload and the JSON State document are `dok.core.results`'s; this module only moves bytes:

- `store_results(location, identifier, state)`: with a result location (`DOK_RESULT_LOCATION`, any fsspec
  URL), writes `<location>/<identifier>/result.pkl` then `state.json` (credentials come from the pod's
  environment, e.g. AWS_* variables from a Kubernetes Secret through `secret_env`);
- `PickupServer`: without one, a tiny HTTP server on the job pod's loopback (127.0.0.1:RESULT_PORT, so only
  a Kubernetes port-forward — which the API server authorises — reaches it; other pods cannot) that an
  attached `dok run` / `RunHandle.wait()` asks `GET /result?wait=S`. The request waits (at most S seconds,
  then 204 and the client asks again) until the runner `offer`s the payload (once the workers are deleted
  and the Job's TTL is set: when the caller has it, the run is over); the runner then waits at most
  `result_pickup_timeout` seconds for one complete download (`wait_picked_up`) before it exits, and says
  so in its log either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from dok.core.results import RESULT_PATH, RESULT_PORT, encode_payload, result_urls, state_document

__all__ = ["PickupServer", "deliver", "store_results"]

MAX_LONG_POLL = 30.0  # seconds one request may wait for the payload (then 204, and the client asks again)
SHUTDOWN_POLL = 0.05  # seconds `close()` may wait for the serving thread (it is on the run's last steps)


def store_results(location: str, identifier: str, state: Any, *, opener: Callable[..., Any] | None = None) -> str:
    """Write the payload and the State document under `location`; returns the directory URL. Raises what
    fsspec raises (the caller reports it)."""
    if opener is None:
        import fsspec

        opener = fsspec.open
    urls = result_urls(location, identifier)
    data = encode_payload(state, identifier=identifier)
    with opener(urls.payload, "wb") as f:
        f.write(data)
    with opener(urls.state, "w", encoding="utf-8") as f:
        f.write(state_document(state, identifier=identifier))
    return urls.directory


class PickupServer:
    """See the module docstring. `start()`, then `offer(data)` once, `wait_picked_up(timeout)`, `close()`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = RESULT_PORT) -> None:
        self.host = host
        self.port = port
        self._payload: bytes | None = None
        self._ready = threading.Event()
        self._picked = threading.Event()
        self.picked_by: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> PickupServer:
        server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL},
                                        name="dok-results", daemon=True)
        self._thread.start()
        return self

    def offer(self, data: bytes) -> None:
        self._payload = data
        self._ready.set()

    def wait_picked_up(self, timeout: float) -> bool:
        return self._picked.wait(timeout)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- used by the handler ------------------------------------------------------------------------------
    def _wait_ready(self, seconds: float) -> bytes | None:
        return self._payload if self._ready.wait(max(0.0, min(seconds, MAX_LONG_POLL))) else None

    def _picked_up(self, who: str) -> None:
        self.picked_by = who
        self._picked.set()


def _handler(owner: PickupServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlparse(self.path)
            if url.path != RESULT_PATH:
                self._send(404, b"not found\n")
                return
            try:
                wait = float(parse_qs(url.query).get("wait", ["0"])[0])
            except ValueError:
                wait = 0.0
            data = owner._wait_ready(wait)
            if data is None:
                self._send(204, b"")
                return
            self._send(200, data)
            owner._picked_up(self.client_address[0])

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the runner logs itself
            return

    return Handler


def deliver(*, state: Any, identifier: str, location: str | None, server: PickupServer | None,
            pickup_timeout: float, say: Callable[[str], None], exit_code: int | None = None) -> bool:
    """Hand the results over (see the module docstring); True when they reached the store or a client."""
    if location is not None:
        t0 = time.monotonic()
        try:
            directory = store_results(location, identifier, state)
        except Exception as exc:  # noqa: BLE001 - reported; the pick-up below is the fallback
            say(f"results: cannot write to {location}: {type(exc).__name__}: {exc}")
        else:
            say(f"results: written to {directory}/ in {time.monotonic() - t0:.1f}s "
                f"(read them with `dok result {identifier}`)")
            return True
    if server is None:
        return False
    try:
        server.offer(encode_payload(state, identifier=identifier, exit_code=exit_code))
    except Exception as exc:  # noqa: BLE001
        say(f"results: cannot encode the results: {type(exc).__name__}: {exc}")
        return False
    say(f"results: waiting up to {pickup_timeout:g}s for the caller to pick them up (port {server.port})")
    if server.wait_picked_up(pickup_timeout):
        say("results: picked up by the caller")
        return True
    say(f"results: nobody picked them up within {pickup_timeout:g}s; only the summary in the termination "
        "message remains (set a result location, --results URL, to keep them)")
    return False
