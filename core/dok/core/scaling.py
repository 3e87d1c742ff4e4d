"""dok's scaling policy: one pure decision per Adaptive tick, from a snapshot of the cluster and its graph.

distributed's `AdaptiveCore.recommendations()` decides from the target alone: when the target drops below
the plan it retires workers that have not joined yet first, then idle ones after `wait_count` ticks. With
many tiny tasks the work-based target stays low while thousands of tasks are queued, so pods that were
just requested are retired before they join, then requested again (seen: 6 pods for a maximum of 3), and
a worker that joined and is retired without its data moving makes Dask recompute its results. Between
phases of a flow (a fan-out, one long task, another fan-out) every worker but one is retired and the second
fan-out waits for new pods — seconds here, minutes on a cluster that must add nodes or pull images.

`ScalingPolicy.decide(snapshot)` replaces that step (`DokAdaptive` builds the snapshot from the in-process
scheduler and applies the decision through Adaptive's own `scale_up`/`scale_down`; there is no second
loop). Rules, each reported as the decision's `reason`:

(a) While work is pending, a worker that has not joined yet (its pod is pending or starting) is never
    retired, and the plan never shrinks below the workers that are busy or still starting.
(b) A worker idle through a gap is kept when the work still to come will need it sooner than a new one
    could start: keep while the expected idle time (`Snapshot.next_work_in`) is below the measured pod
    start-to-join time (`Snapshot.start_cost`), else retire.
(c) Lookahead: workers are started ahead of a fan-out that is about to become ready (the graph holds work
    whose inputs are being computed and will be done within `start_cost`), so they join when it does.
(d) A worker proposed for retirement is retired only after it stayed proposed for `idle_wait` seconds.
(e) Workers that share a pod (`Snapshot.groups`: `worker_processes` > 1) are retired together or not at all:
    idle workers of wholly idle pods are proposed first, and a pod goes only when all its workers are due.

Pure: no I/O, no clock (the snapshot carries `now`), no Dask import; unit-tested without sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Hashable, Literal

if TYPE_CHECKING:
    from .runspec import RunSpec

Worker = Hashable  # a worker's name in the cluster's spec (str for worker pods, int in a LocalCluster)

# Keys of the engine's map-length tasks: a fan-out of still unknown width follows each of them.
LEN_KEY_PREFIX = "len-"

__all__ = ["Decision", "ScalingPolicy", "ScalingSettings", "Snapshot", "Upcoming", "initial_workers"]


@dataclass(frozen=True, kw_only=True)
class ScalingSettings:
    """The run settings of the scaling policy (validated by the run contract)."""

    interval: float = 1.0  # seconds between Adaptive ticks
    idle_wait: float = 3.0  # seconds a worker stays proposed for retirement before it is retired
    lookahead: bool = True  # rules (b) and (c); off = distributed's behaviour plus rule (a)
    target_duration: float = 5.0  # seconds the pending work should take (sizes the target)
    default_start_cost: float = 5.0  # assumed pod start-to-join seconds before one was measured


def settings_for(spec: RunSpec) -> ScalingSettings:
    """The scaling settings of a run, from its RunSpec (the one place they are read)."""
    idle = spec.scale_idle_wait
    return ScalingSettings(interval=spec.adapt_interval,
                           idle_wait=idle if idle is not None else spec.adapt_wait_count * spec.adapt_interval,
                           lookahead=spec.scale_lookahead == "on", target_duration=spec.adapt_target_duration)


@dataclass(frozen=True, kw_only=True)
class Upcoming:
    """Work the graph will make ready soon: `workers` wanted in about `eta` seconds."""

    eta: float
    workers: int


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What the policy sees at one tick (workers are names, as in SpecCluster's spec)."""

    now: float
    minimum: int
    maximum: int | float
    target: int  # workers the pending work needs now (distributed's target or dok's work-based one)
    plan: frozenset[Worker]  # workers the cluster wants to exist
    requested: frozenset[Worker]  # workers asked of the backend (pods created)
    observed: frozenset[Worker]  # workers that joined the scheduler
    busy: frozenset[Worker] = frozenset()  # joined workers with tasks processing
    pending_tasks: int = 0  # tasks waiting, queued, unrunnable or processing
    closable: tuple[Worker, ...] = ()  # idle joined workers in the order the scheduler would close them
    upcoming: Upcoming | None = None  # rule (c)
    next_work_in: float | None = None  # rule (b): seconds until work that needs the idle workers is ready
    start_cost: float | None = None  # measured median seconds from pod request to join
    # rule (e): worker -> every worker of its pod, for pods running several workers (absent: a pod of its own)
    groups: Mapping[Worker, frozenset[Worker]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """One tick's outcome, in Adaptive's vocabulary plus the reason for the scaling log."""

    status: Literal["same", "up", "down"]
    reason: str
    n: int | None = None  # "up": the new plan size
    workers: tuple[Worker, ...] = ()  # "down": the workers to retire

    def recommendation(self) -> dict[str, object]:
        """The dict `AdaptiveCore.adapt()` expects from `recommendations()`."""
        if self.status == "up":
            return {"status": "up", "n": self.n}
        if self.status == "down":
            return {"status": "down", "workers": list(self.workers)}
        return {"status": "same"}


def _clamp(n: int, minimum: int, maximum: int | float) -> int:
    if n > maximum:
        n = int(maximum)
    return max(n, minimum)


@dataclass(kw_only=True)
class ScalingPolicy:
    """Decides scale up/down from a `Snapshot`; remembers only when each worker was first proposed for
    retirement (for `idle_wait`)."""

    settings: ScalingSettings = field(default_factory=ScalingSettings)
    proposed_since: dict[Worker, float] = field(default_factory=dict)

    def start_cost(self, snap: Snapshot) -> float:
        return snap.start_cost if snap.start_cost is not None else self.settings.default_start_cost

    def wanted(self, snap: Snapshot) -> tuple[int, str]:
        """The plan size this tick aims for, and why."""
        want = _clamp(snap.target, snap.minimum, snap.maximum)
        why = f"pending work needs {snap.target} worker(s)" if snap.pending_tasks else "no pending work"
        if snap.target != want:
            why += f" (bounded to {want} by min {snap.minimum}/max {snap.maximum})"
        if not self.settings.lookahead:
            return want, why
        cost = self.start_cost(snap)
        up = snap.upcoming
        if up is not None and up.eta <= cost:
            ahead = _clamp(up.workers, snap.minimum, snap.maximum)
            if ahead > want:
                want, why = ahead, (f"lookahead: {up.workers} worker(s) wanted in ~{up.eta:.1f}s, "
                                    f"within the measured start cost {cost:.1f}s")
        return want, why

    def decide(self, snap: Snapshot) -> Decision:
        plan = len(snap.plan)
        want, why = self.wanted(snap)
        if want > plan:
            self.proposed_since.clear()
            return Decision(status="up", n=want, reason=f"{why}: {plan} -> {want}")
        if want == plan:
            self.proposed_since.clear()
            return Decision(status="same", reason=why)
        starting = snap.plan - snap.observed
        candidates: list[Worker] = []
        kept: list[str] = []
        if starting:
            if snap.pending_tasks:  # rule (a)
                kept.append(f"{len(starting)} starting worker(s) kept while {snap.pending_tasks} task(s) are pending")
            else:
                candidates.extend(sorted(starting, key=str))
        excess = plan - want
        idle = whole_groups_first([w for w in snap.closable if w in snap.observed and w not in snap.busy],
                                  snap.groups)
        if len(candidates) < excess and idle:
            gap_kept = self.keep_through_gap(snap, idle)
            if gap_kept:
                kept.append(gap_kept)
            else:
                candidates.extend(idle)
        if snap.pending_tasks and starting:  # rule (a): busy + starting workers are the floor
            floor = len(snap.busy | starting)
            excess = min(excess, max(0, plan - floor))
        candidates = candidates[:excess]
        now = snap.now
        for name in list(self.proposed_since):
            if name not in candidates:
                del self.proposed_since[name]
        for name in candidates:
            self.proposed_since.setdefault(name, now)
        due = whole_groups(tuple(n for n in candidates if now - self.proposed_since[n] >= self.settings.idle_wait),
                           snap.groups)
        for name in due:
            del self.proposed_since[name]
        note = "; ".join(kept)
        if due:
            reason = f"{why}: retiring idle worker(s) {', '.join(map(str, due))}" + (f"; {note}" if note else "")
            return Decision(status="down", workers=due, reason=reason)
        waiting = [n for n in candidates if n not in due]
        if waiting:
            note = (note + "; " if note else "") + (
                f"{len(waiting)} idle worker(s) retire after {self.settings.idle_wait:g}s idle")
        return Decision(status="same", reason=f"{why}; {note}" if note else why)

    def keep_through_gap(self, snap: Snapshot, idle: list[Worker]) -> str | None:
        """Rule (b): why the idle workers are kept, or None when retiring them is cheaper."""
        if not self.settings.lookahead or snap.next_work_in is None:
            return None
        cost = self.start_cost(snap)
        if snap.next_work_in < cost:
            return (f"{len(idle)} idle worker(s) kept: work for them is expected in ~{snap.next_work_in:.1f}s, "
                    f"sooner than a new one starts ({cost:.1f}s)")
        return None


def _group(worker: Worker, groups: Mapping[Worker, frozenset[Worker]]) -> frozenset[Worker]:
    return groups.get(worker) or frozenset((worker,))


def whole_groups(workers: tuple[Worker, ...], groups: Mapping[Worker, frozenset[Worker]]) -> tuple[Worker, ...]:
    """Rule (e): the workers whose whole pod is among `workers` (a pod is retired with all its workers)."""
    chosen = set(workers)
    return tuple(w for w in workers if _group(w, groups) <= chosen)


def whole_groups_first(idle: list[Worker], groups: Mapping[Worker, frozenset[Worker]]) -> list[Worker]:
    """Rule (e): `idle` reordered so that the workers of wholly idle pods come first, each pod's together (in
    the order of its first idle worker), then the others in their order."""
    if not groups:
        return idle
    present = set(idle)
    first: dict[frozenset[Worker], int] = {}
    for i, w in enumerate(idle):
        first.setdefault(_group(w, groups), i)
    whole = [w for w in idle if _group(w, groups) <= present]
    whole.sort(key=lambda w: (first[_group(w, groups)], str(w)))
    return whole + [w for w in idle if not _group(w, groups) <= present]


def initial_workers(width: int, *, nthreads: int, minimum: int, maximum: int | float, covered: int = 0) -> int:
    """Workers to ask for when a run starts, before any task is measured: one worker thread per task that is
    ready at once (`Flow.initial_width`), as Adaptive's first tick would want (an unmeasured task counts a
    full `target_duration`), bounded by min/max and at least 1 (the flow is about to submit work). `covered`:
    threads that run tasks at once without a worker pod (the job pod's own worker); the tasks they take need
    no pod, and when they take all of them only `minimum` pods are asked for (Adaptive adds more if needed)."""
    if covered > 0:
        rest = max(width, 0) - covered
        if rest <= 0:
            return _clamp(0, minimum, maximum)
        return _clamp(-(-rest // max(nthreads, 1)), minimum, maximum)
    return _clamp(max(1, -(-max(width, 0) // max(nthreads, 1))), max(1, minimum), maximum)


def median(values: list[float]) -> float | None:
    """Median of the measured start costs (None before the first)."""
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def work_target(work_seconds: float, count: int, *, target_duration: float, nthreads: int) -> int:
    """Workers to finish `count` tasks totalling `work_seconds` in about `target_duration` seconds."""
    if not count:
        return 0
    by_work = math.ceil(work_seconds / max(target_duration, 1e-3) / max(nthreads, 1))
    by_count = math.ceil(count / max(nthreads, 1))
    return max(1, min(by_work, by_count))
