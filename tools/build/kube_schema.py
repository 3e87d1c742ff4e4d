"""Test helper: check a manifest against the OpenAPI schemas of real Kubernetes releases, offline.

`schema_errors(manifest, version)` -> [] or the problems (JSON path + message), strict: a field the schema
does not know is an error (a typo, or a field that release lacks). `SCHEMA_VERSIONS`: the oldest release
dok promises (1.30) and the newest one the pinned `kubernetes-validate` ships. Used by the launcher's and
the runner's manifest tests; no cluster, no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kubernetes_validate

OLDEST_VERSION = "1.30"
NEWEST_VERSION = ".".join(kubernetes_validate.latest_version().split(".")[:2])
SCHEMA_VERSIONS = (OLDEST_VERSION, NEWEST_VERSION)


def schema_errors(manifest: Mapping[str, Any], version: str) -> list[str]:
    """The ways `manifest` breaks Kubernetes `version`'s schema (strict), [] when it conforms."""
    try:
        kubernetes_validate.validate(dict(manifest), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path) or "<root>"
        return [f"{path}: {exc.message}"]
    return []
