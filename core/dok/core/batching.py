"""Map batching: the children of a map run in batches on the workers, with per-item semantics kept.

A Dask task costs the scheduler and the client roughly a millisecond, so a map over many tiny items is
bounded by bookkeeping, not by work. A task declared `@task(batch_size=N)` (or `batch_size="auto"`) has
its map's children submitted as Dask tasks of N items each:

- `run_batch` runs on a worker: each item is one `run_task` call, so every item keeps its own retries,
  timeout and error; it returns a `BatchOutcome` (the items' values, and per failed item the same payload a
  single run's `TaskFailed` carries, keyed by the item's own key `(map prefix, i)`).
- `batch_summary` is the small companion task the client follows: the failures of a batch and its start
  and end, never the values; the client turns it into one State per item (`name[i]`).
- `concat_parts` is what consumers of the whole map receive (a reduce, `wait_for`, the final gather):
  the list of all items' values, or the first item failure re-raised, so a reduce after a failed item is
  skipped naming that item, exactly as without batching.
- `batch_item` gives one item of a batch as a future's value, for a downstream map that is not batched
  the same way (per-item getitem, like maps over a result).
- A map over a batched map with the same batch bounds is batched the same way: batch j reads batch j of
  its upstream (`("batch", outcome)` columns); an item whose upstream item failed is recorded as skipped
  with that item as the root.

Pure functions of their inputs (they run on workers); the engine (`dask_executor`) does the submitting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .runtime import TaskFailed, TaskSpec, run_task

__all__ = ["BatchOutcome", "Column", "batch_bounds", "batch_item", "batch_summary", "concat_parts",
           "run_batch", "resolve_batch_size"]

BatchSize = int | Literal["auto"] | None
AUTO_MIN_ITEMS = 64  # "auto" leaves smaller maps unbatched
AUTO_BATCHES_PER_THREAD = 4  # "auto": enough batches for every worker thread to get several (load balance)
AUTO_MIN_BATCHES = 16


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch computed: values of items lo..hi-1 (None where failed) and the failures' payloads."""

    lo: int
    values: list[Any]
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)  # absolute item index -> payload
    start: float = 0.0
    end: float = 0.0


# A column of run_batch: ("items", values for lo..hi-1), ("batch", upstream BatchOutcome with the same
# bounds), or ("const", one value for every item).
Column = tuple[str, Any]


def resolve_batch_size(declared: BatchSize, n: int, threads: int) -> int:
    """Items per batch for a map of n items (1 = not batched)."""
    if declared is None or n <= 1:
        return 1
    if declared == "auto":
        if n < AUTO_MIN_ITEMS:
            return 1
        batches = max(AUTO_MIN_BATCHES, AUTO_BATCHES_PER_THREAD * max(threads, 1))
        return max(1, math.ceil(n / batches))
    return max(1, min(int(declared), n))


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) of each batch."""
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def run_batch(spec: TaskSpec, kwargs: dict[str, Any], prefix: str, lo: int, hi: int, after: Any,
              *columns: Column) -> BatchOutcome:
    """Run items lo..hi-1 of a map (see the module docstring); `after` holds `wait_for` upstreams."""
    start = time.time()
    values: list[Any] = []
    failed: dict[int, dict[str, Any]] = {}
    for i in range(lo, hi):
        args: list[Any] = []
        skip: dict[str, Any] | None = None
        for kind, col in columns:
            if kind == "const":
                args.append(col)
            elif kind == "items":
                args.append(col[i - lo])
            else:  # "batch": an upstream batch with the same bounds
                bad = col.failed.get(i)
                if bad is not None:
                    skip = bad
                    break
                args.append(col.values[i - col.lo])
        if skip is not None:
            failed[i] = skip  # its root (the upstream item's key) makes it a skip on the client
            values.append(None)
            continue
        try:
            values.append(run_task(spec, kwargs, *args))
        except TaskFailed as exc:
            payload = dict(exc.payload)
            payload["key"] = (prefix, i)
            payload["task"] = f"{spec.name}[{i}]"
            failed[i] = payload
            values.append(None)
    return BatchOutcome(lo=lo, values=values, failed=failed, start=start, end=time.time())


def batch_summary(outcome: BatchOutcome) -> dict[str, Any]:
    """The small part of a batch the client needs for the items' States (no values)."""
    return {"failed": outcome.failed, "start": outcome.start, "end": outcome.end}


def concat_parts(kinds: str, *parts: Any) -> list[Any]:
    """The values of a map laid out in segments, in order: `kinds[j]` is "v" for a child run as its own
    task (`parts[j]` is its value; a failed one never gets here, Dask skips this task) or "b" for a batch
    (`parts[j]` is its BatchOutcome, whose first failure is re-raised)."""
    out: list[Any] = []
    for kind, part in zip(kinds, parts):
        if kind == "v":
            out.append(part)
            continue
        if part.failed:
            raise TaskFailed(part.failed[min(part.failed)])
        out.extend(part.values)
    return out


def batch_item(outcome: BatchOutcome, index: int) -> Any:
    """Item `index` (absolute) of a batch, or its failure re-raised."""
    bad = outcome.failed.get(index)
    if bad is not None:
        raise TaskFailed(bad)
    return outcome.values[index - outcome.lo]
