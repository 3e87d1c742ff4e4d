"""Turning States into terminal text: one progress line per finished task, and the final summary.

Progress lines are printed as tasks finish (`  ✓ inc[3]  0.01s`), failures with their exception; the
summary gives the flow's State, counts per kind, each failed task's error (the traceback with --debug or
`verbose`), and the flow's result. Pure functions over `dok.core` States (they return strings).
"""

from __future__ import annotations

import json
from typing import Any

from dok.core.exceptions import EXIT_FLOW_FAILED, EXIT_SUCCESS
from dok.core.states import Failed, Skipped, State

_MARKS = {"success": "ok", "failed": "FAILED", "timed_out": "TIMED OUT", "skipped": "skipped",
          "cancelled": "cancelled", "pending": "pending", "running": "running"}
MAX_RESULT_CHARS = 2000
MAX_FAILURES_SHOWN = 10


def kind_of(state: State) -> str:
    return state.kind.value


def _seconds(state: State) -> str:
    duration = state.duration
    return f"{duration:.2f}s" if duration is not None else ""


def error_line(state: State) -> str:
    """`ValueError: boom` for a Failed state (also when decoded from a summary), the message otherwise."""
    exc_type = state.exc_type if isinstance(state, Failed) else None
    exc_message = state.exc_message if isinstance(state, Failed) else None
    message = state.message or ""
    if exc_type and exc_message is not None:
        return f"{exc_type}: {exc_message}"
    if exc_type and message and not message.startswith(str(exc_type)):
        return f"{exc_type}: {message}"
    return message or str(exc_type or "")


def progress_line(name: str, state: State, *, done: int | None = None, total: int | None = None) -> str:
    """One line for a task that reached `state`."""
    kind = kind_of(state)
    counter = f"[{done}/{total}] " if done is not None and total else (f"[{done}] " if done is not None else "")
    line = f"  {counter}{name} {_MARKS.get(kind, kind)}"
    secs = _seconds(state)
    if secs:
        line += f" ({secs})"
    if kind in ("failed", "timed_out"):
        line += f": {error_line(state)}"
    elif isinstance(state, Skipped) and state.upstream:
        line += f" (upstream {state.upstream} failed)"
    return line


def format_result(result: Any, limit: int = MAX_RESULT_CHARS) -> str:
    try:
        text = json.dumps(result, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(result)
    return _clip(text, limit)


def format_repr_result(result: Any, limit: int = MAX_RESULT_CHARS) -> str:
    """A result decoded from a State summary: a dict of task name -> repr text, shown as a Python dict."""
    if not isinstance(result, dict) or not all(isinstance(v, str) for v in result.values()):
        return format_result(result, limit)
    text = "{" + ", ".join(f"{k!r}: {v}" for k, v in result.items()) + "}"
    return _clip(text, limit)


def format_python_result(result: Any, limit: int = MAX_RESULT_CHARS) -> str:
    """A result holding the real values (the full results of a run): shown as Python shows it."""
    return _clip(repr(result), limit)


def _clip(text: str, limit: int) -> str:
    """`text`, or its first `limit - 3` characters and "..." when it is longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(state: State, *, flow_name: str | None = None, verbose: bool = False, result_reprs: bool = False,
            real_results: bool = False) -> str:
    """The final report for a flow State: headline, counts, failures, result. `result_reprs`: the result
    came from a State summary (values are repr texts, shown unquoted)."""
    kind = kind_of(state)
    title = type(state).__name__
    name = f"flow {flow_name!r}" if flow_name else "flow"
    head = f"{name} finished: {title}"
    secs = _seconds(state)
    if secs:
        head += f" in {secs}"
    lines = [head]
    if state.message:
        lines.extend(f"  {line}" for line in state.message.splitlines())
    task_states = dict(state.task_states)
    counts = state.counts()
    if counts:
        lines.append("  tasks: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if task_states:
        failed = [(n, st) for n, st in task_states.items() if isinstance(st, Failed)]
        for task_name, st in failed[:MAX_FAILURES_SHOWN]:
            attempts = st.attempts or 1
            extra = f" after {attempts} attempts" if attempts > 1 else ""
            lines.append(f"  task {task_name} {_MARKS[kind_of(st)].lower()}{extra}: {error_line(st)}")
            if verbose and st.traceback:
                lines.extend("      " + ln for ln in st.traceback.rstrip().splitlines())
        if len(failed) > MAX_FAILURES_SHOWN:
            lines.append(f"  ... and {len(failed) - MAX_FAILURES_SHOWN} more failed tasks")
    result = state.result
    if kind == "success" or result:
        if real_results:  # the same Python form as the summary's reprs, whether or not the pick-up worked
            shown = format_python_result(result)
        else:
            shown = format_repr_result(result) if result_reprs else format_result(result)
        lines.append(f"  result: {shown}")
    return "\n".join(lines)


def exit_code_for(state: State) -> int:
    """0 for Success, 1 for any other final State of the flow."""
    return EXIT_SUCCESS if state.is_successful() else EXIT_FLOW_FAILED
