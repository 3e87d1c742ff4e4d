"""Kubernetes labels that tie every resource of one flow run together.

Each run has an identifier (a uuid4 string, `new_identifier()`); the job, its pods and the worker pods
carry `run_labels(identifier=..., flow_name=..., component=...)`, so a run's resources are found (and
cleaned up) with `identifier_selector(identifier)` independently of other runs.

Label values must be valid Kubernetes label values (at most 63 characters of `[A-Za-z0-9._-]`, starting
and ending with an alphanumeric character, or empty): `sanitize_label_value` makes any string one.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from .names import is_label_value

__all__ = [
    "IDENTIFIER_LABEL",
    "FLOW_LABEL",
    "COMPONENT_LABEL",
    "MANAGED_BY_LABEL",
    "MANAGED_BY",
    "new_identifier",
    "run_labels",
    "identifier_selector",
    "sanitize_label_value",
    "is_valid_label_value",
]

IDENTIFIER_LABEL = "dok.dev/identifier"
FLOW_LABEL = "dok.dev/flow"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "dok"

MAX_LABEL_VALUE = 63
_BAD_CHARS = re.compile(r"[^-A-Za-z0-9_.]+")


def new_identifier() -> str:
    """A fresh run identifier (uuid4, 36 characters: a valid label value)."""
    return str(uuid.uuid4())


def is_valid_label_value(value: str) -> bool:
    """A Kubernetes label value (the empty string included); the grammar is `names.is_label_value`."""
    return is_label_value(value, allow_empty=True)


def sanitize_label_value(value: str) -> str:
    """`value` as a valid label value: invalid runs of characters become `-`, the ends are trimmed to
    alphanumerics, and a value longer than 63 characters is cut and suffixed with a short hash of the
    original so distinct long values stay distinct."""
    value = str(value)
    if is_valid_label_value(value):
        return value
    clean = _BAD_CHARS.sub("-", value)
    clean = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", clean)
    if len(clean) > MAX_LABEL_VALUE or clean != value:
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        room = MAX_LABEL_VALUE - len(digest) - 1
        head = re.sub(r"[^A-Za-z0-9]+$", "", clean[:room])
        clean = f"{head}-{digest}" if head else digest
    return clean


def run_labels(*, identifier: str, flow_name: str, component: str) -> dict[str, str]:
    """The labels of one resource of a run (component: e.g. "job", "scheduler", "worker")."""
    return {
        IDENTIFIER_LABEL: sanitize_label_value(identifier),
        FLOW_LABEL: sanitize_label_value(flow_name),
        COMPONENT_LABEL: sanitize_label_value(component),
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def identifier_selector(identifier: str) -> str:
    """A label selector matching every resource of the run `identifier`."""
    return f"{IDENTIFIER_LABEL}={sanitize_label_value(identifier)}"
