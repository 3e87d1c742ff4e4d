"""Progress records: what the runner tells the launcher about a running flow, one compact JSON line at a time.

The runner counts finished task runs per task group (a map's children `inc[0]`, `inc[1]`, … are group `inc`;
any other task is its own group) and, at most every `interval` seconds while something changed and once at
the end, writes one line to the job pod's log:

    [dok-progress] {"t": 12.5, "groups": {"inc": {"success": 40, "failed": 1}}, "workers": {"running": 2,
                    "starting": 1}, "final": false}

The launcher (`dok.launcher.live`) renders them (a live view on a terminal, grouped lines otherwise) and hides
them from plain log output. `ProgressCounter` is the runner's side (thread-safe, injectable clock),
`parse_record` the launcher's. Pure: no I/O here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .names import PROGRESS_MARK

__all__ = ["ProgressCounter", "ProgressRecord", "group_of", "kind_name", "parse_record"]


def group_of(name: str) -> str:
    """The task group of a task run name: `inc` for a map child `inc[12]`, the name itself otherwise."""
    if name.endswith("]") and "[" in name:
        return name[: name.rindex("[")]
    return name


@dataclass(frozen=True, kw_only=True)
class ProgressRecord:
    """One progress report: seconds since the run started, per-group counts by State kind, workers."""

    t: float
    groups: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    running: int = 0
    starting: int = 0
    final: bool = False

    def line(self) -> str:
        """The job-log line (`PROGRESS_MARK` + compact JSON)."""
        body = {"t": round(self.t, 1), "groups": {g: dict(c) for g, c in self.groups.items()},
                "workers": {"running": self.running, "starting": self.starting}, "final": self.final}
        return PROGRESS_MARK + json.dumps(body, separators=(",", ":"), sort_keys=True)

    def done(self, group: str) -> int:
        return sum(self.groups.get(group, {}).values())


def parse_record(line: str) -> ProgressRecord | None:
    """The record in a job-log line (a `[dok …s]` prefix before the mark is allowed), None if there is none
    or it is malformed (a log line that merely looks like one is shown as it is)."""
    at = line.find(PROGRESS_MARK)
    if at < 0:
        return None
    try:
        body = json.loads(line[at + len(PROGRESS_MARK):])
        groups = {str(g): {str(k): int(n) for k, n in counts.items()} for g, counts in body["groups"].items()}
        workers = body.get("workers") or {}
        return ProgressRecord(t=float(body["t"]), groups=groups, running=int(workers.get("running", 0)),
                              starting=int(workers.get("starting", 0)), final=bool(body.get("final")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class ProgressCounter:
    """Counts finished task runs per group; `record(...)` when a report is due (see the module docstring)."""

    def __init__(self, *, interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.changed = False
        self.groups: dict[str, dict[str, int]] = {}
        self.maps: set[str] = set()  # groups with map children
        self._lock = threading.Lock()

    def add(self, name: str, kind: str) -> None:
        group = group_of(name)
        with self._lock:
            if group == name and group in self.maps:
                return  # a map's parent State sums up its children, already counted
            if group != name:
                self.maps.add(group)
            counts = self.groups.setdefault(group, {})
            counts[kind] = counts.get(kind, 0) + 1
            self.changed = True

    def due(self, *, workers_changed: bool = False) -> bool:
        with self._lock:
            return (self.changed or workers_changed) and self.clock() - self.last >= self.interval

    def record(self, *, running: int = 0, starting: int = 0, final: bool = False) -> ProgressRecord:
        """The current counts as a record (and the clock restarts)."""
        with self._lock:
            now = self.clock()
            self.last = now
            self.changed = False
            groups = {g: dict(c) for g, c in self.groups.items()}
        return ProgressRecord(t=now - self.started, groups=groups, running=running, starting=starting, final=final)


def kind_name(state: Any) -> str:
    """`success`, `failed`, … for a State (its kind's value), the class name otherwise."""
    kind = getattr(state, "kind", None)
    return str(getattr(kind, "value", kind) or type(state).__name__).lower()
