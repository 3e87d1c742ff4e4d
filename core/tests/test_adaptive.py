"""pending_work_target: the work waiting on its inputs counts toward Adaptive's target."""

from __future__ import annotations

from types import SimpleNamespace

from dok.core.adaptive import pending_work_target


class FakeScheduler:
    def __init__(self, prefixes):
        self.task_prefixes = {p.name: p for p in prefixes}

    def _get_prefix_duration(self, prefix):
        return prefix.duration


def prefix(name, duration, **states):
    return SimpleNamespace(name=name, duration=duration, states=states)


def test_waiting_tasks_count():
    s = FakeScheduler([prefix("numbers-item", 0.0001, queued=34), prefix("slow_square", 1.5, waiting=34)])
    # 34 * 1.5 s = 51 s of work, 5 s target -> 11 workers; at most 34+34 tasks.
    assert pending_work_target(s, target_duration=5, nthreads=1) == 11
    assert pending_work_target(s, target_duration=5, nthreads=2) == 6


def test_capped_by_task_count_and_zero_when_idle():
    assert pending_work_target(FakeScheduler([prefix("long", 600, processing=2)]), target_duration=5, nthreads=1) == 2
    assert pending_work_target(FakeScheduler([prefix("done", 1, memory=10)]), target_duration=5, nthreads=1) == 0
    assert pending_work_target(FakeScheduler([]), target_duration=5, nthreads=1) == 0


def test_tiny_work_still_asks_for_one_worker():
    assert pending_work_target(FakeScheduler([prefix("t", 0.001, queued=1)]), target_duration=5, nthreads=4) == 1


def test_unmeasured_prefix_asks_for_a_worker_per_task():
    unknown = SimpleNamespace(name="fresh", duration=0.4, duration_average=-1, max_exec_time=0.2, states={"queued": 16})
    assert pending_work_target(FakeScheduler([unknown]), target_duration=5, nthreads=1) == 16
    measured = SimpleNamespace(name="fresh", duration=0.5, duration_average=0.5, max_exec_time=0.5,
                               states={"queued": 16})
    assert pending_work_target(FakeScheduler([measured]), target_duration=5, nthreads=1) == 2
