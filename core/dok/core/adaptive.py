"""`DokAdaptive`: distributed's `Adaptive` whose decisions come from dok's `ScalingPolicy`.

Used by every cluster dok scales: the runner's worker pods (SpecCluster) and the CLI's local mode
(LocalCluster). It overrides Adaptive's two documented extension points and nothing else:

- `target()`: the larger of distributed's target and the work still to do. distributed's
  `Scheduler.adaptive_target()` sizes the cluster from tasks that are *ready* plus the workers' occupancy;
  a dok map over a task's result is submitted as n cheap `getitem` tasks followed by n real tasks that
  *wait* on them, so only the cheap ones are ever "ready". dok adds, per task prefix, the tasks waiting/
  queued/unrunnable/processing times the prefix's average duration (a full `target_duration` per task
  while nothing of the prefix has been measured, so a first fan-out gets its workers at once), divided by
  `target_duration`, and never more workers than such tasks per worker thread.
- `recommendations()`: builds a `dok.core.scaling.Snapshot` of the in-process scheduler (who joined, who
  is busy, what is pending, what the graph will make ready next and when, the measured pod start-to-join
  time) and returns `ScalingPolicy.decide()`'s recommendation; each change is reported with its reason
  through `report` (the runner's scaling log). Adaptive's own `scale_up`/`scale_down` (graceful
  `retire_workers`, then closing the worker) apply it; there is no second loop. A SpecCluster whose spec
  entries are "groups" (a pod running several workers) passes them on, so a pod is retired whole.

With a scheduler in another process (no `cluster.scheduler` object) it falls back to the stock behaviour.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

from distributed import Scheduler
from distributed.deploy.adaptive import Adaptive

from .scaling import (LEN_KEY_PREFIX, Decision, ScalingPolicy, ScalingSettings, Snapshot, Upcoming, median,
                      work_target)

PENDING_STATES = ("waiting", "queued", "no-worker", "processing")
UNKNOWN_WIDTH = 1 << 30  # workers wanted by a fan-out whose width is not known yet (bounded by maximum)
_SCAN_LIMIT = 5000  # dependents looked at per tick for the lookahead (the scan runs on the event loop)


def pending_work_target(scheduler: Any, *, target_duration: float, nthreads: int) -> int:
    """Workers needed to finish the pending work in about `target_duration` seconds (see the docstring)."""
    work = 0.0
    count = 0
    for prefix in list(scheduler.task_prefixes.values()):
        n = sum(prefix.states.get(state, 0) for state in PENDING_STATES)
        if n:
            count += n
            if _duration_unknown(prefix):
                # Nothing measured yet: count each task as a full `target_duration` (one worker thread per
                # task, up to the maximum) rather than distributed's 0.5 s guess, so the first fan-out gets
                # its workers at once; the first completions give a real estimate within a tick or two.
                work += n * target_duration
            else:
                work += n * scheduler._get_prefix_duration(prefix)
    return work_target(work, count, target_duration=target_duration, nthreads=nthreads)


def _duration_unknown(prefix: Any) -> bool:
    average = getattr(prefix, "duration_average", 0.0)
    return average is not None and average < 0  # no task of the prefix has finished yet


def upcoming_work(scheduler: Any, *, nthreads: int) -> tuple[float | None, Upcoming | None]:
    """What the graph makes ready next: (seconds until the first waiting task becomes ready, the workers
    wanted by the tasks that become ready within the soonest such time).

    Looks at the dependents of the tasks being computed: a waiting dependent whose other inputs are all in
    memory or being computed becomes ready when its slowest running input ends, estimated as the input's
    prefix average duration minus the time it has been executing."""
    remaining: dict[Any, float] = {}
    for ws in scheduler.workers.values():
        executing = ws.executing
        for ts in ws.processing:
            remaining[ts] = max(0.0, scheduler._get_prefix_duration(ts.prefix) - executing.get(ts, 0.0))
    if not remaining:
        return None, None
    etas: list[tuple[float, int]] = []  # (eta, workers this dependent stands for)
    seen: set[Any] = set()
    for ts in remaining:
        for dep in ts.dependents:
            if dep in seen or dep.state != "waiting":
                continue
            seen.add(dep)
            if len(seen) > _SCAN_LIMIT:
                break
            eta = 0.0
            ready_soon = True
            for inp in dep.dependencies:
                if inp.state == "memory":
                    continue
                if inp in remaining:
                    eta = max(eta, remaining[inp])
                else:
                    ready_soon = False
                    break
            if ready_soon:
                width = UNKNOWN_WIDTH if str(dep.key).startswith(LEN_KEY_PREFIX) else 1
                etas.append((eta, width))
    if not etas:
        return None, None
    first = min(eta for eta, _ in etas)
    horizon = first + 1.0
    width = sum(w for eta, w in etas if eta <= horizon)
    workers = width if width >= UNKNOWN_WIDTH else -(-width // max(nthreads, 1))
    return first, Upcoming(eta=max(eta for eta, _ in etas if eta <= horizon), workers=workers)


def spec_groups(worker_spec: Any) -> dict[Any, frozenset[Any]]:
    """Worker name -> the names of every worker of its SpecCluster spec entry, for entries with a "group"
    (one spec entry = one pod running several workers, named entry + suffix, as SpecCluster's `plan`)."""
    out: dict[Any, frozenset[Any]] = {}
    for name, spec in list(worker_spec.items()):
        suffixes = spec.get("group") if isinstance(spec, dict) else None
        if suffixes:
            members = frozenset(str(name) + suffix for suffix in suffixes)
            out.update(dict.fromkeys(members, members))
    return out


class DokAdaptive(Adaptive):
    """Adaptive with dok's target and `ScalingPolicy` (see the module docstring).

    Extra keyword arguments: `settings` (ScalingSettings: idle wait, lookahead), `report` (called with
    every Decision that changes something, and with reasons for keeping workers)."""

    def __init__(self, cluster: Any = None, *, settings: ScalingSettings | None = None,
                 report: Callable[[Decision], None] | None = None, **kwargs: Any) -> None:
        super().__init__(cluster, **kwargs)
        # Without explicit settings, Adaptive's own knobs carry over: a worker retires after `wait_count`
        # ticks' worth of idleness, as with distributed's close counts.
        self.settings = settings or ScalingSettings(interval=self.interval or 1.0,
                                                    idle_wait=self.wait_count * (self.interval or 1.0),
                                                    target_duration=self.target_duration)
        self.policy = ScalingPolicy(settings=self.settings)
        self.report = report
        self.first_seen: dict[Any, float] = {}  # worker -> when it entered the plan (monotonic)
        self.start_costs: list[float] = []  # measured plan -> join seconds
        self._last_reason = ""

    def _scheduler(self) -> Scheduler | None:
        scheduler = getattr(self.cluster, "scheduler", None)
        return scheduler if isinstance(scheduler, Scheduler) else None

    def _nthreads(self) -> int:
        return max(1, int(getattr(self.cluster, "worker_nthreads", 1) or 1))

    async def target(self) -> int:
        stock = await super().target()
        scheduler = self._scheduler()
        if scheduler is None:
            return stock
        return max(stock, pending_work_target(scheduler, target_duration=self.target_duration,
                                              nthreads=self._nthreads()))

    def _measure(self, plan: set[Any], observed: set[Any], now: float) -> None:
        for name in plan:
            self.first_seen.setdefault(name, now)
        for name in list(self.first_seen):
            if name in observed:
                self.start_costs.append(now - self.first_seen.pop(name))
                del self.start_costs[:-20]
            elif name not in plan:
                del self.first_seen[name]
        for name in observed:  # joined ones are never measured twice
            self.first_seen.pop(name, None)

    def snapshot(self, target: int) -> Snapshot | None:
        scheduler = self._scheduler()
        if scheduler is None:
            return None
        now = time.monotonic()
        plan, requested, observed = set(self.plan), set(self.requested), set(self.observed)
        self._measure(plan, observed, now)
        busy = {ws.name for ws in scheduler.workers.values() if ws.processing and ws.name in plan}
        idle = sorted((ws for ws in scheduler.workers.values() if not ws.processing and ws.name in plan),
                      key=lambda ws: (ws.nbytes, str(ws.name)))
        pending = sum(prefix.states.get(state, 0) for prefix in list(scheduler.task_prefixes.values())
                      for state in PENDING_STATES)
        next_in, upcoming = upcoming_work(scheduler, nthreads=self._nthreads()) if self.settings.lookahead \
            else (None, None)
        return Snapshot(now=now, minimum=self.minimum, maximum=self.maximum, target=target,
                        plan=frozenset(plan), requested=frozenset(requested), observed=frozenset(observed),
                        busy=frozenset(busy), pending_tasks=pending, closable=tuple(ws.name for ws in idle),
                        upcoming=upcoming, next_work_in=next_in, start_cost=median(self.start_costs),
                        groups=spec_groups(getattr(self.cluster, "worker_spec", None) or {}))

    async def recommendations(self, target: int) -> dict:
        snap = self.snapshot(target)
        if snap is None:
            return await super().recommendations(target)
        decision = self.policy.decide(snap)
        # Changes are always reported; reasons for keeping workers only when they change in kind (not
        # merely in the counts they quote), so a long run does not print one line per tick.
        kind = re.sub(r"[0-9.]+", "#", decision.reason)
        if self.report is not None and (decision.status != "same" or ("kept" in kind and kind != self._last_reason)):
            self.report(decision)
        self._last_reason = kind
        return decision.recommendation()
