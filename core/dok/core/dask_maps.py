"""How the engine lays out a map's children as Dask tasks: one per child, batches, or both (a *layout*).

A layout is a list of segments `(lo, hi, batched)`: a segment that is not batched is one child run as one
Dask task (key `(prefix, i)`, followed like any task); a batched segment is children lo..hi-1 run by one
`dok.core.batching.run_batch` task, followed through its small `batch_summary` companion. A laid-out map
is consumed whole through one `concat_parts` future (a reduce, `wait_for`, the final gather), per item
through `batch_item` futures (a map that does not share its layout), or segment by segment by a map that
follows the same layout (a pipeline of batched maps never goes through per-item tasks).

Which layout a map gets:
- `@task(batch_size=N)` or `"auto"`: batches from the start (`resolve_batch_size`);
- `batch_size=None` (the default) and a map of `PROBE_MIN` children or more: *measured*. The first
  `PROBE_COUNT` children are submitted one per task at once; when the first of them finishes, the scheduler's
  measured duration of the task decides the rest: tiny children (under `TINY_SECONDS`) are batched so that a
  batch takes about `BATCH_SECONDS`, others are submitted one per task as before. Everything downstream of
  the map waits for that decision (a few milliseconds for tiny tasks; for long tasks the probes keep the
  workers busy meanwhile);
- `batch_size=1`, or smaller maps: one task per child (no layout).
A map over a laid-out map follows its layout unless it declares `batch_size=1`.

`MapLayouts` is a mixin of the engine's `_DaskRun` (dask_executor.py): it uses the run's client, flow, names
and child bookkeeping.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from .batching import batch_bounds, batch_item, batch_summary, concat_parts, resolve_batch_size, run_batch
from .flow import Node, substitute
from .runtime import run_task, run_task_after
from .states import State, Success, failure_state, skipped_state

__all__ = ["LayoutColumn", "MapLayouts", "Segment"]

Segment = tuple[int, int, bool]  # (lo, hi, batched)

PROBE_MIN = 512  # maps this large get a measured layout when they declare no batch_size
PROBE_COUNT = 64  # children submitted one per task before the decision
TINY_SECONDS = 0.005  # children faster than this are batched
BATCH_SECONDS = 0.1  # the work one batch aims at


@dataclass(frozen=True)
class LayoutColumn:
    """A map column whose upstream map has a layout; see `MapLayouts.plan`."""

    index: int
    segments: tuple[Segment, ...]

    def __len__(self) -> int:
        return self.segments[-1][1] if self.segments else 0


def _prefix_duration(key: Any, dask_scheduler: Any = None) -> float | None:
    """Runs on the scheduler: the measured average duration of the task prefix of `key` (None if none)."""
    ts = dask_scheduler.tasks.get(key) if dask_scheduler is not None else None
    if ts is None or ts.prefix is None:
        return None
    average = ts.prefix.duration_average
    return average if average is not None and average >= 0 else None


def measured_batch_size(duration: float | None, rest: int, threads: int) -> int:
    """Items per batch for the `rest` children of a probed map whose children take `duration` seconds."""
    if duration is None or duration >= TINY_SECONDS or rest < 2:
        return 1
    by_time = math.ceil(BATCH_SECONDS / max(duration, 1e-6))
    by_spread = math.ceil(rest / max(16, 4 * max(threads, 1)))  # keep every worker thread fed
    return max(2, min(by_time, by_spread))


class MapLayouts:
    """The layout half of the engine (see the module docstring)."""

    def init_layouts(self) -> None:
        self.layouts: dict[int, tuple[Segment, ...]] = {}  # node index -> its layout
        self.seg_futs: dict[int, list[Any]] = {}  # node index -> one future per segment
        self.summary_of: dict[Any, tuple[int, int, int]] = {}  # summary key -> (node index, lo, hi)
        self.summary_futs: list[Any] = []
        self.probing: dict[int, dict[str, Any]] = {}  # node index -> what the rest of the map needs

    def layout_futures(self) -> list[Any]:
        return [f for futs in self.seg_futs.values() for f in futs] + list(self.summary_futs)

    def threads(self) -> int:
        try:
            return sum(w.get("nthreads", 1) for w in self.client.scheduler_info(n_workers=-1)["workers"].values())
        except Exception:  # noqa: BLE001 - a sizing hint only
            return 0

    # -- choosing --------------------------------------------------------------------------------------
    def submit_laid_out(self, node: Node, columns: list[Any], broadcast: list[Any], n: int) -> bool:
        """Submit the map with a layout when it gets one (True), else leave it to one task per child."""
        declared = node.task.batch_size if node.task is not None else None
        laid = [c for c in columns if isinstance(c, LayoutColumn)]
        if laid:
            if declared == 1 or len({c.segments for c in laid}) > 1:
                return False
            self.submit_segments(node, columns, broadcast, list(laid[0].segments), n=n)
            return True
        if declared is not None:
            size = resolve_batch_size(declared, n, self.threads())
            if size <= 1:
                return False
            self.submit_segments(node, columns, broadcast, [(lo, hi, True) for lo, hi in batch_bounds(n, size)], n=n)
            return True
        if n < PROBE_MIN:
            return False
        probes = [(i, i + 1, False) for i in range(PROBE_COUNT)]
        self.probing[node.index] = {"columns": columns, "broadcast": broadcast, "n": n}
        self.submit_segments(node, columns, broadcast, probes, n=n, final=False)
        return True

    def decide_probe(self, index: int, key: Any) -> None:
        """The first probe of a map finished: lay out the rest of it from the measured duration."""
        info = self.probing.pop(index)
        node = self.flow._nodes[index]
        try:
            duration = self.client.run_on_scheduler(_prefix_duration, key)
        except Exception:  # noqa: BLE001 - unmeasured: one task per child, as without batching
            duration = None
        n = info["n"]
        rest = n - PROBE_COUNT
        size = measured_batch_size(duration, rest, self.threads())
        if size > 1:
            tail = [(lo + PROBE_COUNT, hi + PROBE_COUNT, True) for lo, hi in batch_bounds(rest, size)]
        else:
            tail = [(i, i + 1, False) for i in range(PROBE_COUNT, n)]
        self.submit_segments(node, info["columns"], info["broadcast"], tail, n=n, append=True)

    # -- submitting ------------------------------------------------------------------------------------
    def submit_segments(self, node: Node, columns: list[Any], broadcast: list[Any], segments: list[Segment],
                        *, n: int, final: bool = True, append: bool = False) -> None:
        """Submit `segments` of the map; with `final`, the map's layout is complete: its whole-map future is
        made and its consumers may be submitted."""
        index = node.index
        kwargs = self.place_args(node.kwargs, substitute(node.kwargs, self.lookup))
        after = [self.lookup(w) for w in node.wait_for] if node.wait_for else None
        prefix = f"{node.name}-{self.token}"
        if not append:
            self.children[index] = [None] * n
            self.child_left[index] = n
            self.seg_futs[index] = []
            self.layouts[index] = ()
            for i in range(n):
                self.names[(prefix, i)] = f"{node.name}[{i}]"
        single_pos = [j for j, seg in enumerate(segments) if not seg[2]]
        futs: list[Any] = [None] * len(segments)
        if single_pos:
            rows = [self.arguments(columns, broadcast, segments[j][0], j, len(self.layouts[index]))
                    for j in single_pos]
            keys = [(prefix, segments[j][0]) for j in single_pos]
            cols = [list(col) for col in zip(*rows)] if rows and rows[0] else []
            m = len(single_pos)
            if after is not None:
                singles = self.client.map(run_task_after, [node.spec] * m, [kwargs] * m, [after] * m, *cols,
                                          key=keys, pure=False, resources=_resources(node))
            else:
                singles = self.client.map(run_task, [node.spec] * m, [kwargs] * m, *cols, key=keys, pure=False,
                                          resources=_resources(node))
            for j, fut in zip(single_pos, singles):
                futs[j] = fut
                self.owner[fut.key] = (index, segments[j][0])
            self.track(singles)
        base = len(self.layouts[index])
        for j, (lo, hi, batched) in enumerate(segments):
            if not batched:
                continue
            cols = self.batch_columns(columns, broadcast, lo, hi, base + j)
            part = self.client.submit(run_batch, node.spec, kwargs, prefix, lo, hi, after, *cols,
                                      key=(f"{prefix}-batch", lo), pure=False, resources=_resources(node))
            summary = self.client.submit(batch_summary, part, key=(f"{prefix}-summary", lo), pure=False)
            futs[j] = part
            self.summary_of[summary.key] = (index, lo, hi)
            self.summary_futs.append(summary)
            self.track([summary])
        self.seg_futs[index].extend(futs)
        self.layouts[index] = self.layouts[index] + tuple(segments)
        if final:
            kinds = "".join("b" if seg[2] else "v" for seg in self.layouts[index])
            self.futs[index] = self.client.submit(concat_parts, kinds, *self.seg_futs[index],
                                                  key=f"{prefix}-all", pure=False)

    def arguments(self, columns: list[Any], broadcast: list[Any], i: int, j: int, base: int) -> list[Any]:
        """The positional arguments of child i (segment j of this submission) run as its own task."""
        args: list[Any] = []
        for c, b in zip(columns, broadcast):
            if c is None:
                args.append(b)
            elif isinstance(c, LayoutColumn):
                args.append(self.seg_futs[c.index][base + j])  # the upstream's single future, same place
            else:
                args.append(c[i])
        return args

    def batch_columns(self, columns: list[Any], broadcast: list[Any], lo: int, hi: int,
                      position: int) -> list[tuple[str, Any]]:
        cols: list[tuple[str, Any]] = []
        for c, b in zip(columns, broadcast):
            if c is None:
                cols.append(("const", b))
            elif isinstance(c, LayoutColumn):
                cols.append(("batch", self.seg_futs[c.index][position]))
            else:
                cols.append(("items", c[lo:hi]))
        return cols

    def per_item(self, col: LayoutColumn) -> list[Any]:
        """One future per item of a laid-out map, for a consumer that does not share its layout."""
        if col.index not in self.items:
            node = self.flow._nodes[col.index]
            prefix = f"{node.name}-item-{self.token}"
            out: list[Any] = []
            sources: list[Any] = []
            positions: list[int] = []
            for fut, (lo, hi, batched) in zip(self.seg_futs[col.index], col.segments):
                for i in range(lo, hi):
                    if batched:
                        positions.append(len(out))
                        sources.append((fut, i))
                        out.append(None)
                    else:
                        out.append(fut)
            if sources:
                items = self.client.map(batch_item, [f for f, _ in sources], [i for _, i in sources],
                                        key=[(prefix, i) for _, i in sources], pure=False)
                for pos, fut in zip(positions, items):
                    out[pos] = fut
            self.items[col.index] = out
        return self.items[col.index]

    # -- completion ------------------------------------------------------------------------------------
    def on_summary(self, fut: Any, status: str) -> None:
        index, lo, hi = self.summary_of[fut.key]
        node = self.flow._nodes[index]
        now = time.time()
        if status == "finished":
            info = fut.result()  # small: failures and times, never the values
            failed = info["failed"]
            for i in range(lo, hi):
                name = f"{node.name}[{i}]"
                payload = failed.get(i)
                if payload is None:
                    state: State = Success(start=info["start"], end=info["end"])
                else:
                    root = self.root_of(payload)
                    state = failure_state(payload) if root == name else skipped_state(root, at=now)
                self.child_done(index, i, name, state)
            return
        # the batch as a whole erred or was cancelled (e.g. the workers running it died)
        states = [self.state_of(fut, f"{node.name}[{i}]", status) for i in range(lo, hi)]
        if any(state is None for state in states):  # being recomputed: not an outcome yet
            self.retrack(fut)
            return
        for i, state in zip(range(lo, hi), states):
            self.child_done(index, i, f"{node.name}[{i}]", state)


def _resources(node: Any) -> dict[str, float] | None:
    """The Dask worker resources a map's task asks for (`@task(resources=...)`), None for none."""
    return getattr(node.task, "resources", None) or None
