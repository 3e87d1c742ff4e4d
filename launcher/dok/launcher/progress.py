"""Progress output of a local run that stays bounded however many tasks the flow has.

Single task runs and map parents get one line each, and so do the first `per_group` children of each map
(small flows print exactly what they always did); after that a map's children are counted per task group
(`inc[0]`, `inc[1]`, … → group `inc`) and reported as one line per group that changed, at most every
`interval` seconds and once more at the end — except failures and timeouts, which are printed in full the
moment they happen. A 50,000-child map prints a few dozen lines instead of 50,000.

Thread-safe (Dask callbacks may come from another thread); the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable, TextIO

from .render import kind_of, progress_line

__all__ = ["GroupedProgress"]

_LOUD = ("failed", "timed_out")


def group_of(name: str) -> str | None:
    """`inc` for a map child `inc[12]`, None for anything else."""
    if name.endswith("]") and "[" in name:
        return name[: name.rindex("[")]
    return None


class GroupedProgress:
    """Callable `(name, state)` that prints bounded progress to `out` (see the module docstring)."""

    def __init__(self, out: TextIO, *, interval: float = 5.0, per_group: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.per_group = per_group
        self.interval = interval
        self.clock = clock
        self.done = 0
        self.groups: dict[str, Counter[str]] = {}
        self.changed: set[str] = set()
        self.last = clock()
        self.lock = threading.Lock()

    def __call__(self, name: str, state: Any) -> None:
        with self.lock:
            self.done += 1
            group = group_of(name)
            kind = kind_of(state)
            counts = self.groups.setdefault(group, Counter()) if group is not None else None
            seen = sum(counts.values()) if counts is not None else 0
            if group is None or kind in _LOUD or seen < self.per_group:
                self._print(progress_line(name, state, done=self.done))
            if counts is not None:
                counts[kind] += 1
                if seen >= self.per_group:
                    self.changed.add(group)
            if self.changed and self.clock() - self.last >= self.interval:
                self._flush_locked()

    def flush(self) -> None:
        """Print the counts not printed yet (call at the end of the run)."""
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        for group in sorted(self.changed):
            counts = self.groups[group]
            total = sum(counts.values())
            detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            self._print(f"  [{self.done}] {group}[...]: {total} finished ({detail})")
        self.changed.clear()
        self.last = self.clock()

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)
