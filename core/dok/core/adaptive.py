"""`DokAdaptive`: distributed's `Adaptive`, with a target that also sees work waiting on its inputs.

Used by every cluster dok scales: the runner's worker pods (SpecCluster) and the CLI's local mode
(LocalCluster).

distributed's `Scheduler.adaptive_target()` sizes the cluster from tasks that are *ready* (queued or
unrunnable) plus the occupancy of the workers. A dok map over a task's result (`square.map(numbers(n))`) is
submitted as n cheap `getitem` tasks followed by n real tasks that *wait* on them; only the cheap ones are
ever "ready", so the stock target stays at 1-2 workers however much work is pending.

This subclass overrides only `Adaptive.target()` (the documented extension point): the target is the
larger of the stock target and the work still to do — per task prefix, the tasks waiting/queued/
unrunnable/processing times the prefix's average duration (distributed's own estimate, "unknown-task-
duration" before the first one finishes) — divided by `target_duration`, and never more workers than there
are such tasks per worker thread. Scaling up and down, the wait count before retiring a worker, the
minimum and maximum stay Adaptive's.
"""

from __future__ import annotations

import math
from typing import Any

from distributed import Scheduler
from distributed.deploy.adaptive import Adaptive

PENDING_STATES = ("waiting", "queued", "no-worker", "processing")


def pending_work_target(scheduler: Any, *, target_duration: float, nthreads: int) -> int:
    """Workers needed to finish the pending work in about `target_duration` seconds (see the docstring)."""
    work = 0.0
    count = 0
    for prefix in list(scheduler.task_prefixes.values()):
        n = sum(prefix.states.get(state, 0) for state in PENDING_STATES)
        if n:
            count += n
            work += n * scheduler._get_prefix_duration(prefix)
    if not count:
        return 0
    by_work = math.ceil(work / max(target_duration, 1e-3) / nthreads)
    by_count = math.ceil(count / nthreads)
    return max(1, min(by_work, by_count))


class DokAdaptive(Adaptive):
    """Adaptive whose target also counts tasks waiting on their inputs (in-process scheduler only)."""

    async def target(self) -> int:
        stock = await super().target()
        scheduler = getattr(self.cluster, "scheduler", None)
        if not isinstance(scheduler, Scheduler):
            return stock
        nthreads = max(1, int(getattr(self.cluster, "worker_nthreads", 1) or 1))
        return max(stock, pending_work_target(scheduler, target_duration=self.target_duration, nthreads=nthreads))
