"""Following the job pod's log while `RunHandle.wait` watches the run: `LogFollower` reads the log stream in a
daemon thread and calls `emit` per line ("[job] …"), keeping the last lines (they explain a runner that died
without reporting a State). When the stream drops while the container still runs it reconnects — with the
shared retry policy (`dok.kube.retry`), every second, at most 20 times — asking only for the seconds it may
have missed (lines may then repeat, never go missing). `stop()` ends it at once, also during a wait.
`wait_last_line(timeout)` waits for the runner's last line (a `last_line` predicate) or the stream's end.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from dok.kube import Kube, RetryPolicy
from dok.kube import retry as kube_retry

from .manifests import CONTAINER_NAME

RECONNECT = RetryPolicy(initial=1.0, maximum=1.0, jitter=0.0, budget=math.inf, max_attempts=20)
KEEP_LINES = 200


class LogFollower:
    """Follows one pod's log in a daemon thread; see the module docstring."""

    def __init__(self, kube: Kube, namespace: str, pod: str, emit: Callable[[str], None], *,
                 reconnect: RetryPolicy = RECONNECT, last_line: Callable[[str], bool] | None = None) -> None:
        self.kube, self.namespace, self.pod, self.emit = kube, namespace, pod, emit
        self.reconnect = reconnect
        self.last_line = last_line
        self._ended = threading.Event()  # the stream ended, or `last_line` matched a line
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dok-log-{pod}", daemon=True)
        self._last = time.monotonic()
        self._attempts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._stop.set()

    def wait_last_line(self, timeout: float) -> bool:
        """Wait at most `timeout` s for the line `last_line` matches (or the stream's end); True if it came.
        The follower keeps following: `stop()` ends it."""
        return self._ended.wait(timeout)

    def _follow_once(self) -> None:
        if self._stop.is_set():
            return
        since = None if self._attempts == 0 else max(1, int(time.monotonic() - self._last) + 1)
        self._attempts += 1
        for line in self.kube.stream_pod_log(self.namespace, self.pod, container=CONTAINER_NAME, since_seconds=since):
            if self._stop.is_set():
                return
            self._last = time.monotonic()
            self.lines.append(line)
            if len(self.lines) > KEEP_LINES:
                del self.lines[:KEEP_LINES // 2]
            self.emit(f"[job] {line}")
            if self.last_line is not None and self.last_line(line):
                self._ended.set()
        # the stream ended: the container finished

    def _run(self) -> None:
        def note(exc: BaseException, wait: float, attempts: int) -> None:
            self.errors.append(f"{type(exc).__name__}: {exc}")

        try:
            kube_retry.call(self._follow_once, policy=self.reconnect, retry_on=lambda exc: not self._stop.is_set(),
                            on_retry=note, sleep=self._stop.wait)
        except Exception as exc:  # noqa: BLE001 - the follower only adds lines; the watch decides
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._ended.set()
