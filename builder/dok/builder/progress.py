"""Build progress: events `dok.builder.build` reports while it works, and the default stderr printer.

A progress callback receives `BuildEvent`s. Kinds: `phase` (what the builder is doing), `step` (a
Dockerfile step starts: `step`/`total`), `cached` (that step was a cache hit), `running` (that step is
being executed), `output` (a line printed by a RUN step),
`push` (per-layer push status), `skip` (build or push skipped: image already there), `done`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Literal, TextIO

EventKind = Literal["phase", "step", "cached", "running", "output", "push", "skip", "done"]


@dataclass(frozen=True, kw_only=True)
class BuildEvent:
    kind: EventKind
    message: str
    step: int | None = None
    total: int | None = None


ProgressCallback = Callable[[BuildEvent], None]


class StderrProgress:
    """Prints phases, steps (`[n/m] INSTRUCTION`, `(cached)` on cache hits), push progress and skips;
    RUN output only when `verbose`."""

    def __init__(self, *, stream: TextIO | None = None, verbose: bool = False) -> None:
        self._stream = stream
        self._verbose = verbose
        self._last_push: dict[str, str] = {}
        self._pending: BuildEvent | None = None  # a step line waiting to learn whether it was cached

    def _flush(self, suffix: str = "") -> None:
        if self._pending is not None:
            event, self._pending = self._pending, None
            print(f"dok build: [{event.step}/{event.total}] {event.message}{suffix}", file=self._stream or sys.stderr,
                  flush=True)

    def __call__(self, event: BuildEvent) -> None:
        stream = self._stream or sys.stderr
        if event.kind == "cached":
            self._flush(" (cached)")
            return
        self._flush()  # docker says "Using cache" right after the step line, before any output
        if event.kind == "running" or (event.kind == "output" and not self._verbose):
            return
        if event.kind == "step" and event.step is not None:
            self._pending = event
            return
        if event.kind == "push":
            layer, _, status = event.message.partition(": ")
            if self._last_push.get(layer) == status:  # one line per layer status change
                return
            self._last_push[layer] = status
        prefix = "dok build: "
        if event.kind == "output":
            prefix += "    "
        print(prefix + event.message, file=stream, flush=True)


def print_progress(event: BuildEvent) -> None:
    """Default callback: `StderrProgress()` (non-verbose)."""
    _DEFAULT(event)


_DEFAULT = StderrProgress()


def silent(event: BuildEvent) -> None:
    """A callback that drops every event."""
