"""States: where a task run or a flow run is, or how it ended.

Every task run and every flow run ends in exactly one terminal State:

- `Success`   (with `.result` when the executor fetched it),
- `Failed`    (exception type, message and traceback text, number of attempts),
- `TimedOut`  (a `Failed` whose last attempt exceeded the task's timeout),
- `Skipped`   (an upstream task failed; `.upstream` names it),
- `Cancelled` (the run was interrupted before the task finished).

`Pending` and `Running` are the non-terminal kinds. States are small frozen values with `start`/`end`
timestamps (seconds since the epoch, `None` when unknown). A flow's State carries `.task_states`, keyed by
task run name (`add`, `add-2`, `inc[17]`), and `.result`, a dict of the reference tasks' results.

`State.to_dict()` / `state_from_dict()` convert to and from JSON-safe dicts; results that are not
JSON-safe come back as their `repr` text.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

__all__ = [
    "StateKind",
    "State",
    "Pending",
    "Running",
    "Success",
    "Failed",
    "TimedOut",
    "Skipped",
    "Cancelled",
    "state_from_dict",
    "flow_state",
]


class StateKind(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL_KINDS = frozenset(
    {StateKind.SUCCESS, StateKind.FAILED, StateKind.TIMED_OUT, StateKind.SKIPPED, StateKind.CANCELLED}
)


@dataclass(frozen=True, kw_only=True, eq=True)
class State:
    """Base of all States. Use the subclasses; `kind` says which one a State is."""

    kind: ClassVar[StateKind]

    message: str = ""
    start: float | None = None
    end: float | None = None
    result: Any = field(default=None, hash=False)
    task_states: Mapping[str, "State"] = field(default_factory=dict, hash=False, repr=False)
    # Counts per kind when task_states is incomplete (a State decoded from a summary); else None.
    task_counts: Mapping[str, int] | None = field(default=None, hash=False, repr=False)

    # -- predicates -------------------------------------------------------------------------------
    def is_successful(self) -> bool:
        return self.kind is StateKind.SUCCESS

    def is_failed(self) -> bool:
        """Failed or TimedOut."""
        return self.kind in (StateKind.FAILED, StateKind.TIMED_OUT)

    def is_timed_out(self) -> bool:
        return self.kind is StateKind.TIMED_OUT

    def is_skipped(self) -> bool:
        return self.kind is StateKind.SKIPPED

    def is_cancelled(self) -> bool:
        return self.kind is StateKind.CANCELLED

    def is_pending(self) -> bool:
        return self.kind is StateKind.PENDING

    def is_running(self) -> bool:
        return self.kind is StateKind.RUNNING

    def is_finished(self) -> bool:
        """True for every terminal kind (Success, Failed, TimedOut, Skipped, Cancelled)."""
        return self.kind in TERMINAL_KINDS

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    def counts(self) -> dict[str, int]:
        """Number of task States per kind (`{"success": 48, "failed": 1, ...}`), kinds with 0 left out."""
        if self.task_counts is not None:
            return dict(self.task_counts)
        out: dict[str, int] = {}
        for st in self.task_states.values():
            out[st.kind.value] = out.get(st.kind.value, 0) + 1
        return out

    def __str__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r})" if self.message else f"{name}()"

    # -- serialisation ----------------------------------------------------------------------------
    def _extra(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; `state_from_dict(s.to_dict())` gives an equal State."""
        d: dict[str, Any] = {"kind": self.kind.value}
        if self.message:
            d["message"] = self.message
        if self.start is not None:
            d["start"] = self.start
        if self.end is not None:
            d["end"] = self.end
        d.update(self._extra())
        if self.result is not None:
            d.update(encode_result(self.result))
        if self.task_states:
            d["task_states"] = {name: st.to_dict() for name, st in self.task_states.items()}
        if self.task_counts is not None:
            d["task_counts"] = dict(self.task_counts)
        return d


@dataclass(frozen=True, kw_only=True, eq=True)
class Pending(State):
    kind: ClassVar[StateKind] = StateKind.PENDING


@dataclass(frozen=True, kw_only=True, eq=True)
class Running(State):
    kind: ClassVar[StateKind] = StateKind.RUNNING


@dataclass(frozen=True, kw_only=True, eq=True)
class Success(State):
    kind: ClassVar[StateKind] = StateKind.SUCCESS


@dataclass(frozen=True, kw_only=True, eq=True)
class Failed(State):
    """The task raised (after all retries), or a flow with failed tasks."""

    kind: ClassVar[StateKind] = StateKind.FAILED
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    attempts: int = 1

    def _extra(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k in ("exc_type", "exc_message", "traceback"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.attempts != 1:
            d["attempts"] = self.attempts
        return d


@dataclass(frozen=True, kw_only=True, eq=True)
class TimedOut(Failed):
    """The task's last attempt ran longer than its `timeout` (seconds)."""

    kind: ClassVar[StateKind] = StateKind.TIMED_OUT
    timeout: float | None = None

    def _extra(self) -> dict[str, Any]:
        d = super()._extra()
        if self.timeout is not None:
            d["timeout"] = self.timeout
        return d


@dataclass(frozen=True, kw_only=True, eq=True)
class Skipped(State):
    """Not run because an upstream task did not succeed; `upstream` is the run name of the one that failed."""

    kind: ClassVar[StateKind] = StateKind.SKIPPED
    upstream: str | None = None

    def _extra(self) -> dict[str, Any]:
        return {"upstream": self.upstream} if self.upstream is not None else {}


@dataclass(frozen=True, kw_only=True, eq=True)
class Cancelled(State):
    kind: ClassVar[StateKind] = StateKind.CANCELLED


STATE_CLASSES: dict[StateKind, type[State]] = {
    cls.kind: cls for cls in (Pending, Running, Success, Failed, TimedOut, Skipped, Cancelled)
}


# -- results in JSON ------------------------------------------------------------------------------
def _json_safe(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_safe(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v, depth + 1) for k, v in value.items())
    return False


def encode_result(value: Any, *, max_repr: int = 2000) -> dict[str, Any]:
    """`{"result": value}` when JSON-safe, else `{"result_repr": repr(value)}` (truncated to max_repr)."""
    if _json_safe(value):
        return {"result": value}
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break a State
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    if len(text) > max_repr:
        text = text[: max_repr - 3] + "..."
    return {"result_repr": text}


def state_from_dict(d: Mapping[str, Any]) -> State:
    """Inverse of `State.to_dict()`. Raises ValueError naming the problem for a malformed dict."""
    if not isinstance(d, Mapping) or "kind" not in d:
        raise ValueError(f"not a dok State dict (no 'kind'): {str(d)[:200]}")
    try:
        cls = STATE_CLASSES[StateKind(d["kind"])]
    except ValueError:
        allowed = ", ".join(k.value for k in StateKind)
        raise ValueError(f"unknown State kind {d['kind']!r}; expected one of {allowed}") from None
    kwargs: dict[str, Any] = {}
    for f in ("message", "start", "end", "attempts", "exc_type", "exc_message", "traceback", "timeout", "upstream"):
        if f in d and f in cls.__dataclass_fields__:
            kwargs[f] = d[f]
    if "result" in d:
        kwargs["result"] = d["result"]
    elif "result_repr" in d:
        kwargs["result"] = d["result_repr"]
    if "task_counts" in d:
        kwargs["task_counts"] = dict(d["task_counts"])
    if "task_states" in d:
        kwargs["task_states"] = {name: state_from_dict(sd) for name, sd in d["task_states"].items()}
    return cls(**kwargs)


def to_json(state: State) -> str:
    return json.dumps(state.to_dict(), sort_keys=True)


# -- the flow's State from its tasks' States ------------------------------------------------------
def flow_state(
    task_states: Mapping[str, State],
    *,
    results: Mapping[str, Any] | None = None,
    start: float | None,
    end: float | None,
    interrupted: str | None = None,
) -> State:
    """The flow run's State: Cancelled when `interrupted` (the reason) or a task was cancelled, Failed
    when any task failed, timed out or was skipped, else Success with `result` = reference results."""
    bad = [n for n, s in task_states.items() if s.is_failed()]
    cancelled = [n for n, s in task_states.items() if s.is_cancelled()]
    skipped = [n for n, s in task_states.items() if s.is_skipped()]
    common: dict[str, Any] = {"start": start, "end": end, "task_states": dict(task_states)}
    if interrupted is not None or cancelled:
        why = interrupted or "tasks were cancelled"
        msg = f"flow run cancelled ({why}); {len(cancelled)} task(s) cancelled"
        if bad:
            msg += f", {len(bad)} failed: {_names(bad)}"
        return Cancelled(message=msg, **common)
    if bad or skipped:
        if bad:
            msg = f"{len(bad)} task(s) failed: {_names(bad)}"
            first = task_states[bad[0]]
            if isinstance(first, Failed) and first.exc_type:
                msg += f" (first: {first.exc_type}: {_short(first.exc_message or '')})"
        else:
            msg = f"{len(skipped)} task(s) skipped"
        if skipped and bad:
            msg += f"; {len(skipped)} skipped"
        return Failed(message=msg, result=dict(results or {}), **common)
    return Success(
        message=f"all {len(task_states)} task(s) succeeded", result=dict(results or {}), **common
    )


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _short(text: str, limit: int = 200) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- States built by the executors ----------------------------------------------------------------
def failure_state(payload: Mapping[str, Any]) -> Failed:
    """The Failed/TimedOut State for a `runtime.TaskFailed` payload."""
    cls = TimedOut if payload.get("kind") == "timed_out" else Failed
    exc_type, exc_message = payload.get("exc_type"), payload.get("message")
    extra = {"timeout": payload.get("timeout")} if cls is TimedOut else {}
    return cls(
        message=f"{exc_type}: {_short(exc_message or '', 500)}",
        exc_type=exc_type,
        exc_message=exc_message,
        traceback=payload.get("traceback"),
        start=payload.get("start"),
        end=payload.get("end"),
        attempts=payload.get("attempts") or 1,
        **extra,
    )


def skipped_state(upstream: str, *, at: float | None = None) -> Skipped:
    return Skipped(
        message=f"not run: upstream task {upstream!r} did not succeed", upstream=upstream, start=at, end=at
    )


def map_parent_state(
    name: str, child_states: list[tuple[str, State]], *, start: float | None, end: float | None,
    result: Any = None,
) -> State:
    """The aggregate State of a map (`name`) from its children's States."""
    failed = [n for n, s in child_states if s.is_failed()]
    skipped = [(n, s) for n, s in child_states if s.is_skipped()]
    cancelled = [n for n, s in child_states if s.is_cancelled()]
    total = len(child_states)
    if cancelled:
        return Cancelled(message=f"{len(cancelled)} of {total} children cancelled", start=start, end=end)
    if failed:
        first = child_states[[n for n, _ in child_states].index(failed[0])][1]
        detail = f" (first: {failed[0]}: {first.message})" if first.message else ""
        return Failed(
            message=f"{len(failed)} of {total} children failed: {_names(failed)}{detail}",
            exc_type=getattr(first, "exc_type", None),
            exc_message=getattr(first, "exc_message", None),
            start=start,
            end=end,
        )
    if skipped:
        up = skipped[0][1].upstream if isinstance(skipped[0][1], Skipped) else skipped[0][0]
        return Skipped(
            message=f"{len(skipped)} of {total} children skipped: upstream task {up!r} did not succeed",
            upstream=up,
            start=start,
            end=end,
        )
    return Success(message=f"{total} children succeeded", result=result, start=start, end=end)
