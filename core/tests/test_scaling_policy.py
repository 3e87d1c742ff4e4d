"""The scaling policy's rules, decided from snapshots (no cluster, no sleeping)."""

from __future__ import annotations

import pytest

from dok.core.scaling import ScalingPolicy, ScalingSettings, Snapshot, Upcoming, median, work_target


def snap(*, now=100.0, target=1, plan=("w1", "w2", "w3"), observed=("w1",), busy=(), pending=0, closable=None,
         minimum=0, maximum=3, upcoming=None, next_work_in=None, start_cost=None) -> Snapshot:
    observed = frozenset(observed)
    return Snapshot(now=now, minimum=minimum, maximum=maximum, target=target, plan=frozenset(plan),
                    requested=frozenset(plan), observed=observed, busy=frozenset(busy), pending_tasks=pending,
                    closable=tuple(closable if closable is not None else sorted(observed - frozenset(busy))),
                    upcoming=upcoming, next_work_in=next_work_in, start_cost=start_cost)


def policy(**kw) -> ScalingPolicy:
    return ScalingPolicy(settings=ScalingSettings(**{"idle_wait": 2.0, **kw}))


def test_scale_up_to_target_bounded_by_maximum():
    d = policy().decide(snap(target=10, plan=("w1",), observed=("w1",), busy=("w1",), pending=100))
    assert (d.status, d.n) == ("up", 3)
    assert "bounded to 3" in d.reason


def test_rule_a_starting_workers_never_retired_while_work_is_pending():
    p = policy()
    # 5,000 tiny tasks: the work-based target is 1, two workers requested but not joined yet
    for t in range(0, 30):
        d = p.decide(snap(now=100.0 + t, target=1, busy=("w1",), pending=5000))
        assert d.status == "same", d
    assert "starting worker(s) kept while 5000 task(s) are pending" in d.reason


def test_rule_a_starting_workers_may_go_once_nothing_is_pending():
    p = policy()
    assert p.decide(snap(now=100.0, target=0, pending=0, minimum=0)).status == "same"  # proposed, waiting
    d = p.decide(snap(now=102.5, target=0, pending=0))
    assert d.status == "down" and set(d.workers) >= {"w2", "w3"}


def test_rule_a_busy_plus_starting_is_the_floor_idle_joined_ones_can_go():
    p = policy()
    s = dict(target=1, plan=("w1", "w2", "w3", "w4"), observed=("w1", "w2", "w3"), busy=("w1",), pending=50,
             maximum=4)
    assert p.decide(snap(now=100.0, **s)).status == "same"
    d = p.decide(snap(now=103.0, **s))
    assert d.status == "down"
    assert "w4" not in d.workers and "w1" not in d.workers  # neither the starting nor the busy one
    assert len(d.workers) == 2 and set(d.workers) == {"w2", "w3"}


def test_rule_d_idle_wait_before_retiring_and_reset_when_needed_again():
    p = policy(idle_wait=3.0)
    idle = dict(target=1, observed=("w1", "w2", "w3"), busy=("w1",), pending=1)
    assert p.decide(snap(now=100.0, **idle)).status == "same"
    assert p.decide(snap(now=102.0, **idle)).status == "same"
    # demand comes back: the proposal is forgotten
    assert p.decide(snap(now=102.5, target=3, observed=("w1", "w2", "w3"), busy=("w1", "w2", "w3"),
                         pending=9)).status == "same"
    assert p.decide(snap(now=104.0, **idle)).status == "same"  # the clock starts again
    d = p.decide(snap(now=107.5, **idle))
    assert d.status == "down" and set(d.workers) == {"w2", "w3"}
    assert "retiring idle worker(s)" in d.reason


def test_rule_b_idle_workers_kept_through_a_gap_shorter_than_start_cost():
    p = policy(idle_wait=0.0)
    s = dict(target=1, observed=("w1", "w2", "w3"), busy=("w1",), pending=1, start_cost=4.0)
    d = p.decide(snap(next_work_in=3.0, **s))
    assert d.status == "same" and "kept" in d.reason and "sooner than a new one starts (4.0s)" in d.reason
    d = p.decide(snap(next_work_in=6.0, **s))  # a long gap: cheaper to restart them
    assert d.status == "down" and set(d.workers) == {"w2", "w3"}


def test_rule_b_off_without_lookahead():
    d = policy(idle_wait=0.0, lookahead=False).decide(
        snap(target=1, observed=("w1", "w2", "w3"), busy=("w1",), pending=1, start_cost=4.0, next_work_in=1.0))
    assert d.status == "down"


def test_rule_c_lookahead_starts_workers_ahead_of_a_fanout():
    p = policy()
    s = dict(target=1, plan=("w1",), observed=("w1",), busy=("w1",), pending=17, start_cost=3.0)
    far = p.decide(snap(upcoming=Upcoming(eta=6.0, workers=16), **s))
    assert far.status == "same"  # too early: pods would idle
    near = p.decide(snap(upcoming=Upcoming(eta=2.5, workers=16), **s))
    assert (near.status, near.n) == ("up", 3) and near.reason.startswith("lookahead")
    off = policy(lookahead=False).decide(snap(upcoming=Upcoming(eta=2.5, workers=16), **s))
    assert off.status == "same"


def test_rule_c_uses_default_start_cost_until_measured():
    p = policy(default_start_cost=5.0)
    d = p.decide(snap(target=0, plan=(), observed=(), pending=1, upcoming=Upcoming(eta=4.0, workers=2)))
    assert (d.status, d.n) == ("up", 2)


def test_minimum_is_kept():
    p = policy(idle_wait=0.0)
    d = p.decide(snap(target=0, minimum=2, observed=("w1", "w2", "w3"), pending=0))
    assert d.status == "down" and len(d.workers) == 1


@pytest.mark.parametrize("status", ["same", "up", "down"])
def test_recommendation_shape(status):
    from dok.core.scaling import Decision
    d = Decision(status=status, reason="r", n=2 if status == "up" else None,
                 workers=("a",) if status == "down" else ())
    rec = d.recommendation()
    assert rec["status"] == status
    assert ("n" in rec) == (status == "up") and ("workers" in rec) == (status == "down")


def test_helpers():
    assert median([]) is None and median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 3.0]) == 2.0
    assert work_target(0.0, 0, target_duration=5, nthreads=1) == 0
    assert work_target(5.0, 5000, target_duration=5, nthreads=1) == 1  # tiny tasks: few workers by work
    assert work_target(100.0, 4, target_duration=5, nthreads=1) == 4  # never more than tasks


def test_scaling_settings_come_from_the_run_spec():
    from dok.core.runspec import RunSpec
    from dok.core.scaling import settings_for

    spec = RunSpec(max_workers=4, adapt_interval=0.5, adapt_wait_count=4)
    assert settings_for(spec) == ScalingSettings(interval=0.5, idle_wait=2.0, lookahead=True, target_duration=1.0)
    spec = RunSpec(max_workers=4, scale_idle_wait=7.5, scale_lookahead="off")
    assert (settings_for(spec).idle_wait, settings_for(spec).lookahead) == (7.5, False)
    env = spec.to_env()
    assert env["DOK_SCALE_IDLE_WAIT"] == "7.5" and env["DOK_SCALE_LOOKAHEAD"] == "off"
    assert RunSpec.from_env(env).scale_lookahead == "off"
    with pytest.raises(ValueError, match="scale_lookahead"):
        RunSpec(scale_lookahead="maybe")
    with pytest.raises(ValueError, match="scale_idle_wait"):
        RunSpec(scale_idle_wait=-1)


@pytest.mark.parametrize("width,nthreads,minimum,maximum,expected", [
    (1, 1, 0, 4, 1),     # a one-task flow: one worker
    (12, 1, 0, 4, 4),    # a fan-out of 12: up to the maximum at once
    (12, 4, 0, 8, 3),    # four threads per worker: 12 tasks need 3 workers
    (0, 1, 0, 4, 1),     # nothing ready at once (an empty map): still one, the flow is about to submit
    (2, 1, 3, 5, 3),     # never below min_workers
    (50, 2, 0, 1, 1),    # never above max_workers
])
def test_initial_workers_one_thread_per_ready_task_bounded(width, nthreads, minimum, maximum, expected):
    from dok.core.scaling import initial_workers

    assert initial_workers(width, nthreads=nthreads, minimum=minimum, maximum=maximum) == expected


def test_initial_workers_leave_to_the_job_pods_worker_what_its_threads_take():
    from dok.core.scaling import initial_workers

    assert initial_workers(1, nthreads=1, minimum=0, maximum=4, covered=1) == 0   # a one-task flow: no pod
    assert initial_workers(1, nthreads=1, minimum=2, maximum=4, covered=1) == 2   # min_workers still hold
    assert initial_workers(12, nthreads=1, minimum=0, maximum=4, covered=2) == 4  # the rest still need pods
    assert initial_workers(5, nthreads=2, minimum=0, maximum=9, covered=1) == 2


def _pods(*pods: tuple[str, ...]) -> dict:
    """Rule (e) groups: each tuple is one pod's Dask workers."""
    return {w: frozenset(pod) for pod in pods for w in pod}


def test_rule_e_a_pod_is_retired_whole_or_not_at_all():
    from dok.core.scaling import whole_groups, whole_groups_first

    groups = _pods(("a/0", "a/1"), ("b/0", "b/1"))
    assert whole_groups(("a/0", "b/0", "a/1"), groups) == ("a/0", "a/1")
    assert whole_groups(("a/0", "b/0"), groups) == ()
    assert whole_groups(("x", "a/0"), groups) == ("x",)  # no group: a pod of its own
    # idle workers of wholly idle pods first, each pod's together; the partly idle pod's after them
    assert whole_groups_first(["a/0", "b/1", "b/0", "c"], groups) == ["b/0", "b/1", "c", "a/0"]
    assert whole_groups_first(["b/0", "a/0"], {}) == ["b/0", "a/0"]  # no groups: unchanged


def test_rule_e_only_wholly_idle_pods_go_and_never_half_a_pod():
    groups = _pods(("a/0", "a/1"), ("b/0", "b/1"), ("c/0", "c/1"))
    plan = tuple(sorted(groups))
    p = policy()
    # one worker of pod a is busy: pod b and c are idle; the target (2 workers) leaves room to drop 4
    s = dict(target=2, plan=plan, observed=plan, busy=("a/0",), pending=1, maximum=6)
    assert p.decide(Snapshot(**_snap_kw(now=100.0, groups=groups, **s))).status == "same"
    d = p.decide(Snapshot(**_snap_kw(now=103.0, groups=groups, **s)))
    assert d.status == "down" and sorted(d.workers) == ["b/0", "b/1", "c/0", "c/1"]
    # room to drop only 3 workers: one whole pod (2), never a third worker from another pod
    p = policy()
    s = dict(target=3, plan=plan, observed=plan, busy=("a/0",), pending=1, maximum=6)
    p.decide(Snapshot(**_snap_kw(now=100.0, groups=groups, **s)))
    d = p.decide(Snapshot(**_snap_kw(now=103.0, groups=groups, **s)))
    assert d.status == "down" and sorted(d.workers) in (["b/0", "b/1"], ["c/0", "c/1"])
    # room for one worker only: nothing goes (half a pod would take the other half's work down with it)
    p = policy()
    s = dict(target=5, plan=plan, observed=plan, busy=("a/0",), pending=1, maximum=6)
    p.decide(Snapshot(**_snap_kw(now=100.0, groups=groups, **s)))
    assert p.decide(Snapshot(**_snap_kw(now=103.0, groups=groups, **s))).status == "same"


def _snap_kw(*, now, target, plan, observed, busy, pending, maximum, groups) -> dict:
    observed = frozenset(observed)
    return dict(now=now, minimum=0, maximum=maximum, target=target, plan=frozenset(plan), requested=frozenset(plan),
                observed=observed, busy=frozenset(busy), pending_tasks=pending,
                closable=tuple(sorted(observed - frozenset(busy))), groups=groups)
