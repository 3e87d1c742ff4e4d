"""The retry policy (tenacity underneath): backoff grows, the budget bounds the total wait, non-transient
failures are not retried, Retry-After wins; `poll` waits for a condition. No real sleeping."""

from __future__ import annotations

import asyncio

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from dok.kube import retry


class Script:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def fake_time():
    sleeps: list[float] = []
    return sleeps, sleeps.append, (lambda: sum(sleeps))


def refused():
    return urllib3.exceptions.NewConnectionError(None, "Connection refused")


def test_transient_failures_are_retried_with_growing_backoff():
    sleeps, sleep, clock = fake_time()
    fn = Script(refused(), ApiException(status=503), ApiException(status=429), refused(), "ok")
    policy = retry.RetryPolicy(initial=0.1, maximum=1.0, budget=5.0)
    seen = []
    assert retry.call(fn, policy=policy, sleep=sleep, clock=clock, on_retry=lambda e, w, n: seen.append(n)) == "ok"
    assert fn.calls == 5 and len(sleeps) == 4 and sleeps[-1] > sleeps[0]
    assert all(s <= 1.0 * 1.25 for s in sleeps) and seen == [1, 2, 3, 4]


def test_budget_bounds_the_total_wait_and_the_last_failure_propagates():
    sleeps, sleep, clock = fake_time()
    fn = Script(*[refused() for _ in range(100)])
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        retry.call(fn, policy=retry.RetryPolicy(initial=0.1, maximum=1.0, budget=2.0), sleep=sleep, clock=clock)
    assert 1.0 < sum(sleeps) <= 2.0 and fn.calls == len(sleeps) + 1


def test_not_transient_is_not_retried():
    sleeps, sleep, clock = fake_time()
    fn = Script(ApiException(status=404), "never")
    with pytest.raises(ApiException):
        retry.call(fn, policy=retry.RetryPolicy(), sleep=sleep, clock=clock)
    assert fn.calls == 1 and sleeps == []


def test_no_retry_policy_makes_one_attempt():
    sleeps, sleep, clock = fake_time()
    fn = Script(refused(), "never")
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        retry.call(fn, policy=retry.NO_RETRY, sleep=sleep, clock=clock)
    assert fn.calls == 1


def test_retry_after_wins_and_max_attempts_stops():
    sleeps, sleep, clock = fake_time()
    busy = ApiException(status=429)
    busy.headers = {"Retry-After": "7"}
    fn = Script(busy, busy, busy)
    with pytest.raises(ApiException):
        retry.call(fn, policy=retry.RetryPolicy(budget=100.0, max_attempts=3), sleep=sleep, clock=clock)
    assert sleeps == [7.0, 7.0] and fn.calls == 3


def test_async_call_awaits_its_sleep():
    slept: list[float] = []

    async def sleep(seconds):
        slept.append(seconds)

    outcomes = [refused(), "done"]

    async def fn():
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    policy = retry.RetryPolicy(initial=0.5, maximum=0.5, jitter=0.0)
    assert asyncio.run(retry.acall(fn, policy=policy, sleep=sleep, clock=lambda: sum(slept))) == "done"
    assert slept == [0.5]


def test_poll_until_done_or_timeout_returns_the_last_result():
    sleeps, sleep, clock = fake_time()
    assert retry.poll(Script(3, 2, 0), done=lambda n: n == 0, timeout=10, interval=0.5, sleep=sleep,
                      clock=clock) == 0
    assert sleeps == [0.5, 0.5]
    sleeps.clear()
    assert retry.poll(Script(*[5] * 10), done=lambda n: n == 0, timeout=1.2, interval=0.5, sleep=sleep,
                      clock=clock) == 5
    assert sleeps == [0.5, 0.5]


def test_invalid_policy_is_refused():
    with pytest.raises(ValueError):
        retry.RetryPolicy(jitter=1.5)
