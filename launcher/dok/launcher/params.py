"""`--param k=v` on the command line → the flow's parameter dict, checked against the flow's parameters.

Values are parsed as JSON when they are valid JSON (`n=10` → 10, `xs=[1,2]` → [1, 2], `ok=true` → True,
`s="10"` → "10"), else kept as strings (`name=alice` → "alice"). An unknown name is a usage error that
lists the parameters the flow accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import UsageError

if TYPE_CHECKING:
    from dok.core.flow import Flow

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


def flow_parameter_names(flow: Flow) -> list[str]:
    """The names of the flow's parameters, sorted."""
    return sorted(flow.parameters)


def check_params(flow: Flow, params: Mapping[str, Any]) -> None:
    """Raise UsageError when `params` names a parameter the flow does not have."""
    allowed = flow_parameter_names(flow)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        which = ", ".join(allowed) if allowed else "none"
        raise UsageError(f"unknown parameter {', '.join(unknown)} for flow {flow.name!r}",
                         hint=f"allowed parameters: {which}")
