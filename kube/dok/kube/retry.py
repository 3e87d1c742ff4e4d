"""The one retry policy of dok's Kubernetes calls, on top of tenacity.

`RetryPolicy` is data: exponential backoff (`initial` doubling up to `maximum`, ± `jitter`) within a time
`budget` (and optionally at most `max_attempts` attempts); a server's Retry-After wins over the backoff.
- `call(fn, policy=…)` runs `fn()` again after failures `retry_on` accepts (default: transient API failures),
  and re-raises the last failure once the next wait would overrun the budget;
- `acall(…)` is the same for a coroutine function (the runner's event loop never blocks);
- `poll(fn, done=…, timeout=…, interval=…)` calls `fn()` until `done(result)` or the timeout, and returns the
  last result (waiting for something to appear or to be gone).
`sleep` and `clock` are injectable, so tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .errors import is_transient, retry_after

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Backoff `initial` s doubling up to `maximum` s (± `jitter` as a fraction) for `budget` s in total."""

    initial: float = 0.2
    maximum: float = 3.0
    budget: float = 45.0
    jitter: float = 0.25
    max_attempts: int | None = None
    request_timeout: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds per request

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.budget < 0 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid retry policy {self}")


NO_RETRY = RetryPolicy(budget=0.0)


class _Backoff(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        server = retry_after(outcome.exception() if outcome is not None and outcome.failed else None)
        if server is not None:
            return server
        p = self.policy
        delay = min(p.maximum, p.initial * 2 ** (retry_state.attempt_number - 1))
        return delay * (1 + p.jitter * (2 * random.random() - 1))


class _Budget(stop_base):
    """Stop when the next wait would end past the budget (measured on `clock`) or attempts are used up."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.policy, self.clock, self.start = policy, clock, clock()

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if self.policy.max_attempts is not None and retry_state.attempt_number >= self.policy.max_attempts:
            return True
        return self.clock() - self.start + (retry_state.upcoming_sleep or 0.0) > self.policy.budget


OnRetry = Callable[[BaseException, float, int], None]  # (failure, seconds until the next attempt, attempts so far)


def _settings(policy: RetryPolicy, retry_on: Callable[[BaseException], bool], clock: Callable[[], float],
              on_retry: OnRetry | None) -> dict:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.outcome.failed:
            on_retry(state.outcome.exception(), state.upcoming_sleep, state.attempt_number)

    return dict(stop=_Budget(policy, clock), wait=_Backoff(policy), retry=tenacity.retry_if_exception(retry_on),
                before_sleep=before_sleep, reraise=True)


def call(fn: Callable[[], T], *, policy: RetryPolicy, retry_on: Callable[[BaseException], bool] = is_transient,
         on_retry: OnRetry | None = None, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> T:
    """`fn()`, retried per `policy` while its failure satisfies `retry_on`; the last failure propagates."""
    retrying = tenacity.Retrying(sleep=sleep, **_settings(policy, retry_on, clock, on_retry))
    return retrying(fn)


async def acall(fn: Callable[[], Awaitable[T]], *, policy: RetryPolicy,
                retry_on: Callable[[BaseException], bool] = is_transient, on_retry: OnRetry | None = None,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                clock: Callable[[], float] = time.monotonic) -> T:
    """`call` for a coroutine function: waits with `await sleep(...)`."""
    async def attempt() -> T:  # tenacity awaits only coroutine functions; `fn` may be a lambda
        return await fn()

    retrying = tenacity.AsyncRetrying(sleep=sleep, **_settings(policy, retry_on, clock, on_retry))
    return await retrying(attempt)


def poll(fn: Callable[[], T], *, done: Callable[[T], bool], timeout: float, interval: float,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """Call `fn()` every `interval` s until `done(result)`; after `timeout` s return the last result as is."""
    policy = RetryPolicy(initial=interval, maximum=interval, budget=timeout if timeout >= 0 else math.inf, jitter=0.0)
    retrying = tenacity.Retrying(sleep=sleep, stop=_Budget(policy, clock), wait=_Backoff(policy),
                                 retry=tenacity.retry_if_not_result(done),
                                 retry_error_callback=lambda state: state.outcome.result())
    return retrying(fn)
