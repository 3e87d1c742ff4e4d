"""The final State names the worker pods that ended early and why (`with_causes`).

The health watch records, for each worker pod that stopped before the run did, its cause by name
(`dok.kube.causes.end_cause`: OOMKilled, Evicted, Preempted, Deleted, ImagePull, Unschedulable, Error) in the
`RunMonitor`. A task that failed because its worker was OOM-killed otherwise only says "KilledWorker"; the
flow's State message gets one line per such pod, so `dok run`, `dok status` and `handle.wait()` show the
cause. Pure function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["EARLY_END_PREFIX", "causes_text", "with_causes"]

EARLY_END_PREFIX = "worker pods that ended early:"
MAX_LISTED = 10


def causes_text(ended: Mapping[str, str]) -> str:
    """`worker pods that ended early: NAME: CAUSE; …` (at most MAX_LISTED named), or "" when none did."""
    if not ended:
        return ""
    items = [f"{name}: {cause}" for name, cause in list(ended.items())[:MAX_LISTED]]
    more = len(ended) - MAX_LISTED
    if more > 0:
        items.append(f"and {more} more")
    return f"{EARLY_END_PREFIX} " + "; ".join(items)


def with_causes(state: Any, ended: Mapping[str, str]) -> Any:
    """`state` with `causes_text(ended)` as the first line of its message (the same State when no pod ended
    early). First, because the termination message keeps only the start of a long message (a worker's log
    tail can follow an infrastructure error)."""
    text = causes_text(ended)
    if not text or not dataclasses.is_dataclass(state):
        return state
    message = getattr(state, "message", "") or ""
    if text in message:
        return state
    return dataclasses.replace(state, message=f"{text}\n{message}" if message else text)
