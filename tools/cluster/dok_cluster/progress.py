"""Progress output: every long step says what it does, how far along it is, and never stays silent."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType


def say(message: str) -> None:
    """One line of progress on stderr (stdout is reserved for answers such as the kubeconfig path)."""
    print(f"cluster: {message}", file=sys.stderr, flush=True)


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Heartbeat:
    """Context manager: says `what` on entry, `still <what> (elapsed)` every `every` seconds, and the total at exit."""

    def __init__(self, what: str, *, every: float = 30.0) -> None:
        self.what = what
        self.every = every
        self.started = 0.0
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self.started = time.monotonic()
        say(f"{self.what} ...")
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            say(f"  still {self.what} ({fmt_duration(time.monotonic() - self.started)} elapsed)")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.elapsed = time.monotonic() - self.started
        status = "done" if exc_type is None else "FAILED"
        say(f"{self.what}: {status} in {fmt_duration(self.elapsed)}")
