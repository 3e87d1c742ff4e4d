"""A flow State as compact JSON that always fits a size limit (a Kubernetes termination message: 4096 B).

`encode_summary(state, max_bytes=4096)` keeps, in order of importance:

1. the flow State's kind, timing and message (`k`, `s`, `e`, `m`),
2. counts of task States per kind (`c`),
3. the failed / timed-out tasks with their error text (`f`: name -> {k, m, t(raceback tail)}),
4. the results of the terminal (reference) tasks as truncated `repr`s (`r`),

and drops or shortens detail from the bottom of that list until the UTF-8 JSON fits `max_bytes`.
`decode_summary(text)` gives back a State of the same kind whose `task_states` hold the failed tasks
(as Failed/TimedOut) and whose `result` maps reference task names to their repr text.
"""

from __future__ import annotations

import json
from typing import Any

from .states import STATE_CLASSES, Failed, State, StateKind, TimedOut

__all__ = ["encode_summary", "decode_summary", "SUMMARY_VERSION"]

SUMMARY_VERSION = 1
_MIN_BYTES = 64


def _cut(text: str | None, limit: int, *, tail: bool = False) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[:limit]
    return "..." + text[-(limit - 3):] if tail else text[: limit - 3] + "..."


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, sort_keys=False, default=str)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the summary
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"


def encode_summary(state: State, max_bytes: int = 4096) -> str:
    """Compact JSON summary of a flow State, guaranteed `len(text.encode()) <= max_bytes`."""
    if max_bytes < _MIN_BYTES:
        raise ValueError(f"max_bytes must be at least {_MIN_BYTES}, got {max_bytes}")
    failed = [(n, s) for n, s in state.task_states.items() if s.is_failed()]
    results = state.result if isinstance(state.result, dict) else {}
    result_reprs = [(str(n), _safe_repr(v)) for n, v in results.items()]

    def build(msg: int, n_failed: int, err: int, tb: int, n_results: int, res: int) -> dict[str, Any]:
        doc: dict[str, Any] = {"v": SUMMARY_VERSION, "k": state.kind.value}
        if state.start is not None:
            doc["s"] = round(state.start, 3)
        if state.end is not None:
            doc["e"] = round(state.end, 3)
        if msg and state.message:
            doc["m"] = _cut(state.message, msg)
        if msg:
            counts = state.counts()
            if counts:
                doc["c"] = counts
        if n_failed:
            f: dict[str, Any] = {}
            for name, s in failed[:n_failed]:
                item: dict[str, Any] = {"k": s.kind.value, "m": _cut(s.message, err)}
                if tb and isinstance(s, Failed) and s.traceback:
                    item["t"] = _cut(s.traceback, tb, tail=True)
                f[_cut(name, 120)] = item
            doc["f"] = f
            if n_failed < len(failed):
                doc["fx"] = len(failed) - n_failed  # failed tasks left out
        if n_results:
            doc["r"] = {_cut(name, 120): _cut(text, res) for name, text in result_reprs[:n_results]}
            if n_results < len(result_reprs):
                doc["rx"] = len(result_reprs) - n_results
        return doc

    # From the most detailed to the barest; the first that fits wins.
    nf, nr = len(failed), len(result_reprs)
    attempts = [
        (1000, nf, 500, 1500, nr, 200),
        (1000, nf, 300, 600, nr, 100),
        (500, nf, 200, 300, nr, 60),
        (500, min(nf, 10), 200, 300, min(nr, 10), 60),
        (300, min(nf, 5), 150, 0, min(nr, 5), 40),
        (300, min(nf, 5), 100, 0, 0, 0),
        (200, min(nf, 3), 80, 0, 0, 0),
        (200, min(nf, 1), 60, 0, 0, 0),
        (120, 0, 0, 0, 0, 0),
        (40, 0, 0, 0, 0, 0),
    ]
    for params in attempts:
        text = _dump(build(*params))
        if len(text.encode()) <= max_bytes:
            return text
    return _dump({"v": SUMMARY_VERSION, "k": state.kind.value})


def decode_summary(text: str) -> State:
    """A State from `encode_summary` output; ValueError naming the problem when it is not one."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a dok State summary (invalid JSON: {exc}): {str(text)[:200]!r}") from None
    if not isinstance(doc, dict) or "k" not in doc:
        raise ValueError(f"not a dok State summary (no 'k' field): {str(text)[:200]!r}")
    try:
        kind = StateKind(doc["k"])
    except ValueError:
        raise ValueError(f"unknown State kind {doc['k']!r} in summary") from None
    task_states: dict[str, State] = {}
    for name, item in (doc.get("f") or {}).items():
        cls = TimedOut if item.get("k") == StateKind.TIMED_OUT.value else Failed
        msg = item.get("m", "")
        exc_type = msg.split(":", 1)[0] if ":" in msg else None
        task_states[name] = cls(message=msg, exc_type=exc_type, traceback=item.get("t"))
    kwargs: dict[str, Any] = {
        "message": doc.get("m", ""),
        "start": doc.get("s"),
        "end": doc.get("e"),
        "task_states": task_states,
    }
    if "r" in doc:
        kwargs["result"] = dict(doc["r"])
    if "c" in doc:
        kwargs["task_counts"] = {str(k): int(v) for k, v in doc["c"].items()}
    return STATE_CLASSES[kind](**kwargs)
