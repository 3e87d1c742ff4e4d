"""`--param k=v` on the command line → the flow's parameter dict, checked against the flow's parameters.

Values are parsed as JSON when they are valid JSON (`n=10` → 10, `xs=[1,2]` → [1, 2], `ok=true` → True,
`s="10"` → "10"), else kept as strings (`name=alice` → "alice"). An unknown name is a usage error that
lists the parameters the flow accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import UsageError

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def parse_value(text: str) -> Any:
    """JSON if `text` is JSON, else the string itself."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """Parse `k=v` strings; a malformed item or a repeated name raises UsageError naming it."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"malformed --param {item!r}", hint="write --param NAME=VALUE, e.g. --param n=10")
        if not _NAME_RE.match(name):
            raise UsageError(f"invalid parameter name {name!r} in --param {item!r}",
                             hint="parameter names are Python-like identifiers")
        if name in out:
            raise UsageError(f"--param {name} given twice", hint="give each parameter once")
        out[name] = parse_value(value)
    return out


def flow_parameter_names(flow: Any) -> list[str] | None:
    """The names of the flow's parameters, or None when the flow does not say (then nothing is checked)."""
    params = getattr(flow, "parameters", None)
    if callable(params):
        params = params()
    if params is None:
        return None
    if isinstance(params, Mapping):
        return sorted(str(k) for k in params)
    names = []
    for p in params:
        names.append(p if isinstance(p, str) else getattr(p, "name", str(p)))
    return sorted(names)


def check_params(flow: Any, params: Mapping[str, Any]) -> None:
    """Raise UsageError when `params` names a parameter the flow does not have."""
    allowed = flow_parameter_names(flow)
    if allowed is None:
        return
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        name = getattr(flow, "name", "the flow")
        which = ", ".join(allowed) if allowed else "none"
        raise UsageError(f"unknown parameter {', '.join(unknown)} for flow {name!r}",
                         hint=f"allowed parameters: {which}")
