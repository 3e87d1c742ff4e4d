"""The task-run wrapper: what actually runs on a Dask worker (or in-process) for one task run.

`run_task(spec, kwargs, *args)` calls the user's function with retries (`max_retries`, `retry_delay`)
and a per-attempt timeout, and either returns the function's value unchanged (so downstream tasks get
plain values as inputs and Dask moves data worker-to-worker) or raises `TaskFailed`, whose `payload` is
a small dict describing the failure (kind, exception type/message, traceback text, timing, attempts).

Skip propagation needs no code here: a Dask task whose input erred is never run, and Dask reports the
upstream's `TaskFailed` for it, which the client turns into `Skipped(upstream=<that task>)`.

This module is deliberately tiny and dependency-free on the hot path: a task without retries or a
timeout costs one function call and one try/except.
"""

from __future__ import annotations

import threading
import time
import traceback as _tb
from typing import Any, Callable

__all__ = ["TaskSpec", "TaskFailed", "run_task", "run_task_after", "compute_times", "MAX_TRACEBACK_CHARS"]

MAX_TRACEBACK_CHARS = 20_000


class TaskSpec:
    """What a worker needs to run one task: the function, the run name, retry and timeout options.

    Shared by every child of a map (pickled once per submission batch)."""

    __slots__ = ("fn", "name", "max_retries", "retry_delay", "timeout", "filename")

    def __init__(
        self,
        *,
        fn: Callable[..., Any],
        name: str,
        max_retries: int = 0,
        retry_delay: float = 0.0,
        timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.filename = getattr(getattr(fn, "__code__", None), "co_filename", None)

    def __getstate__(self) -> tuple:
        return (self.fn, self.name, self.max_retries, self.retry_delay, self.timeout, self.filename)

    def __setstate__(self, state: tuple) -> None:
        self.fn, self.name, self.max_retries, self.retry_delay, self.timeout, self.filename = state
        # cloudpickle replaces the file name of functions pickled by value with "<dynamic-code>"; put it
        # back so tracebacks name the user's file (and show its lines where the file exists).
        code = getattr(self.fn, "__code__", None)
        if code is not None and self.filename and code.co_filename != self.filename:
            try:
                self.fn.__code__ = code.replace(co_filename=self.filename)
            except (AttributeError, TypeError, ValueError):
                pass

    def __repr__(self) -> str:
        return f"TaskSpec({self.name!r})"


class TaskFailed(Exception):
    """Raised by `run_task` when a task run fails or times out; `payload` describes the failure."""

    def __init__(self, payload: dict[str, Any]) -> None:
        what = "timed out" if payload.get("kind") == "timed_out" else "failed"
        message = str(payload.get("message"))
        if len(message) > 300:
            message = message[:297] + "..."
        super().__init__(f"task {payload.get('task')!r} {what}: {payload.get('exc_type')}: {message}")
        self.payload = payload

    def __reduce__(self) -> tuple:
        return (TaskFailed, (self.payload,))


class _Timeout(Exception):
    pass


def run_task(spec: TaskSpec, kwargs: dict[str, Any], *args: Any) -> Any:
    """Run `spec.fn(*args, **kwargs)` with the spec's retries and timeout; see the module docstring."""
    if spec.max_retries == 0 and spec.timeout is None:  # the lean path
        start = time.time()
        try:
            return spec.fn(*args, **kwargs)
        except Exception as exc:
            raise TaskFailed(_payload(spec, exc, start, 1)) from None
    return _run_with_options(spec, args, kwargs)


def run_task_after(spec: TaskSpec, kwargs: dict[str, Any], after: Any, *args: Any) -> Any:
    """`run_task` for a task with state-only upstreams (`wait_for=`): `after` holds them and is ignored."""
    return run_task(spec, kwargs, *args)


def _run_with_options(spec: TaskSpec, args: tuple, kwargs: dict[str, Any]) -> Any:
    start = time.time()
    attempt = 0
    while True:
        attempt += 1
        try:
            if spec.timeout is None:
                return spec.fn(*args, **kwargs)
            return _call_with_timeout(spec, args, kwargs)
        except Exception as exc:
            if attempt > spec.max_retries:
                raise TaskFailed(_payload(spec, exc, start, attempt)) from None
        if spec.retry_delay > 0:
            time.sleep(spec.retry_delay)


def _call_with_timeout(spec: TaskSpec, args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run in a daemon thread and wait at most `spec.timeout` seconds. A thread cannot be killed, so a
    timed-out call keeps running in the background until it returns; its result is discarded."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, spec.fn(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - handed over to the calling thread
            box.append((False, exc))

    thread = threading.Thread(target=target, name=f"dok-task-{spec.name}", daemon=True)
    thread.start()
    thread.join(spec.timeout)
    if not box:
        raise _Timeout(f"task {spec.name!r} did not finish within its timeout of {spec.timeout:g} s")
    ok, value = box[0]
    if ok:
        return value
    raise value


def _current_key() -> Any:
    try:
        from distributed import get_worker

        return get_worker().get_current_task()
    except Exception:
        return None


def _payload(spec: TaskSpec, exc: BaseException, start: float, attempts: int) -> dict[str, Any]:
    timed_out = isinstance(exc, _Timeout)
    if timed_out:
        text = str(exc)
    else:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:  # hide the wrapper's frames
            tb = tb.tb_next
        text = "".join(_tb.format_exception(type(exc), exc, tb))
        if len(text) > MAX_TRACEBACK_CHARS:
            text = "...\n" + text[-MAX_TRACEBACK_CHARS:]
    try:
        message = str(exc)
    except Exception:  # a broken __str__
        message = f"<unprintable {type(exc).__name__}>"
    return {
        "kind": "timed_out" if timed_out else "failed",
        "task": spec.name,
        "key": _current_key(),
        "exc_type": "TimeoutError" if timed_out else type(exc).__name__,
        "message": message,
        "traceback": text,
        "start": start,
        "end": time.time(),
        "attempts": attempts,
        "timeout": spec.timeout,
    }


def compute_times(keys: list[Any], dask_worker: Any = None) -> dict[Any, tuple[float, float]]:
    """Run on each worker by `client.run` at the end of a flow run: the compute start/stop of those keys
    this worker holds, from the worker's own records (one round trip per run instead of one per task)."""
    out: dict[Any, tuple[float, float]] = {}
    tasks = getattr(getattr(dask_worker, "state", None), "tasks", {})
    for key in keys:
        ts = tasks.get(key)
        if ts is None:
            continue
        for ss in getattr(ts, "startstops", ()):
            if ss.get("action") == "compute":
                out[key] = (ss["start"], ss["stop"])
    return out
