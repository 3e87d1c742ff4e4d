"""The progress of a run on the cluster, as `dok run` shows it while it follows the job pod's log.

The runner writes a progress record (`dok.core.progress`: finished task runs per group, workers running and
starting) every ~2 s; a view gets every job-log line through `line(text)`:

- `LiveView` (a terminal): a compact live display with rich — one bar per task group with its counts, a
  status line with the workers running/starting and the time elapsed; other log lines scroll above it.
- `GroupedView` (not a terminal: CI logs, pipes): the log as before but grouped — at most one line per task
  group that changed every `interval` seconds (and a last one at the end); per-task success lines are not
  repeated (the counts carry them), every failure line and every other log line is printed in full.

Both hide the raw records. `make_view(out, quiet=…)` picks one (`None` with --quiet: nothing is followed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TextIO

from dok.core.progress import ProgressRecord, parse_record

__all__ = ["GroupedView", "LiveView", "counts_text", "is_task_success_line", "make_view"]

# The runner's per-task line for a success, e.g. "[dok   12.3s] task inc[3]: SUCCESS  [41 finished]".
_TASK_SUCCESS = re.compile(r"(^|\] )task \S+: SUCCESS\s+\[\d+ finished\]\s*$")
MAX_GROUPS = 12  # bars on a terminal; the rest are summed up as "other groups"


def is_task_success_line(text: str) -> bool:
    return bool(_TASK_SUCCESS.search(text))


def counts_text(counts: dict[str, int] | None) -> str:
    """`41 done (40 success, 1 failed)`; `0 done` when nothing finished."""
    counts = dict(counts or {})
    done = sum(counts.values())
    if not done:
        return "0 done"
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (kv[0] != "success", kv[0])))
    return f"{done} done ({detail})"


def workers_text(record: ProgressRecord) -> str:
    return f"workers: {record.running} running, {record.starting} starting"


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class GroupedView:
    """Plain lines, grouped (see the module docstring). Not thread-safe: one follower feeds it."""

    def __init__(self, out: TextIO, *, interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.interval = interval
        self.clock = clock
        self.last_print = clock() - interval  # the first record is shown at once
        self.shown: dict[str, dict[str, int]] = {}
        self.pending: ProgressRecord | None = None

    def line(self, text: str) -> None:
        record = parse_record(text)
        if record is not None:
            self.pending = record
            if record.final or self.clock() - self.last_print >= self.interval:
                self._show(record)
            return
        if is_task_success_line(text):
            return
        self._print(text)

    def close(self) -> None:
        if self.pending is not None:
            self._show(self.pending)

    def _show(self, record: ProgressRecord) -> None:
        self.pending = None
        self.last_print = self.clock()
        changed = [g for g, counts in record.groups.items() if self.shown.get(g) != dict(counts)]
        for group in changed:
            self._print(f"[progress {_elapsed(record.t)}] {group}: {counts_text(dict(record.groups[group]))}; "
                        f"{workers_text(record)}")
            self.shown[group] = dict(record.groups[group])
        if not changed and not record.final:
            self._print(f"[progress {_elapsed(record.t)}] {workers_text(record)}")

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


class LiveView:
    """A rich live display on a terminal (see the module docstring); `console` is injectable for tests."""

    def __init__(self, console: object | None = None, *, auto_refresh: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = console if console is not None else Console(stderr=False)
        self.progress = Progress(TextColumn("{task.description:<24}"), BarColumn(bar_width=30),
                                 TextColumn("{task.fields[counts]}"), console=self.console,
                                 auto_refresh=auto_refresh, transient=False, refresh_per_second=4)
        self.status = self.progress.add_task("starting", total=None, counts="", visible=True)
        self.bars: dict[str, int] = {}
        self.started = False

    def line(self, text: str) -> None:
        self._start()
        record = parse_record(text)
        if record is not None:
            self._update(record)
            return
        if is_task_success_line(text):
            return
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.started:
            self.progress.refresh()
            self.progress.stop()
            self.started = False

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def _update(self, record: ProgressRecord) -> None:
        groups = list(record.groups.items())
        shown, rest = groups[:MAX_GROUPS], groups[MAX_GROUPS:]
        if rest:
            other: dict[str, int] = {}
            for _, counts in rest:
                for kind, n in counts.items():
                    other[kind] = other.get(kind, 0) + n
            shown.append((f"{len(rest)} other groups", other))
        for group, counts in shown:
            done = sum(counts.values())
            total = done if record.final else None  # sizes are known at the end; a pulse until then
            if group not in self.bars:
                self.bars[group] = self.progress.add_task(group[:24], total=total, counts="")
            self.progress.update(self.bars[group], completed=done, total=total, counts=counts_text(dict(counts)))
        what = "finished" if record.final else workers_text(record)
        self.progress.update(self.status, description=f"elapsed {_elapsed(record.t)}", counts=what,
                             total=1 if record.final else None, completed=1 if record.final else 0)
        self.progress.refresh()


def make_view(out: TextIO, *, quiet: bool = False, tty: bool | None = None) -> LiveView | GroupedView | None:
    """The view for `dok run`: None with --quiet, a live display on a terminal, grouped lines otherwise."""
    if quiet:
        return None
    if tty is None:
        tty = bool(getattr(out, "isatty", lambda: False)())
    if tty:
        from rich.console import Console

        return LiveView(Console(file=out))
    return GroupedView(out)
