"""Errors of dok.kube: every failed Kubernetes call becomes one of these, with a hint and an exit code.

The classes say what happened to the call (not who made it): the launcher's CLI prints `message` and `hint`
and exits with `exit_code` (2 for what the user must fix: credentials, permissions, names, invalid values;
3 for the platform: the API server unreachable or failing); the runner ends its run as an infrastructure
failure whatever the class. `status` is the HTTP status (None for connection errors).
"""

from __future__ import annotations

from dok.core.exceptions import EXIT_INFRA, EXIT_USAGE, DokError


class KubeError(DokError):
    """Base of every dok.kube error: core's `DokError` (`message`: what failed, `hint`: what to do, `exit_code`)
    plus the HTTP `status` and `reason` of the refused call."""

    exit_code = EXIT_INFRA

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None,
                 reason: str | None = None, detail: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message, hint=hint, detail=detail, exit_code=exit_code)
        self.status = status
        self.reason = reason


class KubeUsageError(KubeError):
    """Base of the errors the caller must fix (credentials, permissions, names, values): exit code 2."""

    exit_code = EXIT_USAGE


class KubeconfigError(KubeUsageError):
    """The kubeconfig (or in-cluster configuration) cannot be loaded or used."""


class Unauthorized(KubeUsageError):
    """The API server rejected the credentials (HTTP 401)."""


class Forbidden(KubeUsageError):
    """The caller may not do this (HTTP 403); the hint says whose permission is missing."""


class NotFound(KubeUsageError):
    """The object does not exist (HTTP 404)."""


class Conflict(KubeUsageError):
    """The object already exists (HTTP 409)."""


class Invalid(KubeUsageError):
    """The API server rejected a value (HTTP 400/422)."""


class ApiUnavailable(KubeError):
    """The API server answered with a transient error (5xx, 429) until the retry budget was spent."""


class ClusterUnreachable(KubeError):
    """The API server cannot be reached (connection refused, DNS, TLS, timeout)."""
