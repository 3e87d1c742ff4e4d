"""Errors of dok.kube: every failed Kubernetes call becomes one of these, with a hint and an exit code.

The classes say what happened to the call (not who made it): the launcher's CLI prints `message` and `hint`
and exits with `exit_code` (2 for what the user must fix: credentials, permissions, names, invalid values;
3 for the platform: the API server unreachable or failing); the runner ends its run as an infrastructure
failure whatever the class. `status` is the HTTP status (None for connection errors).
"""

from __future__ import annotations

from dok.core.exceptions import DokError

EXIT_USAGE = 2
EXIT_INFRA = 3


class KubeError(DokError):
    """Base of every dok.kube error: `message` (what failed), `hint` (what to do), HTTP `status`/`reason`."""

    exit_code: int = EXIT_INFRA

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class KubeconfigError(KubeError):
    """The kubeconfig (or in-cluster configuration) cannot be loaded or used."""

    exit_code = EXIT_USAGE


class Unauthorized(KubeError):
    """The API server rejected the credentials (HTTP 401)."""

    exit_code = EXIT_USAGE


class Forbidden(KubeError):
    """The caller may not do this (HTTP 403); the hint says whose permission is missing."""

    exit_code = EXIT_USAGE


class NotFound(KubeError):
    """The object does not exist (HTTP 404)."""

    exit_code = EXIT_USAGE


class Conflict(KubeError):
    """The object already exists (HTTP 409)."""

    exit_code = EXIT_USAGE


class Invalid(KubeError):
    """The API server rejected a value (HTTP 400/422)."""

    exit_code = EXIT_USAGE


class ApiUnavailable(KubeError):
    """The API server answered with a transient error (5xx, 429) until the retry budget was spent."""


class ClusterUnreachable(KubeError):
    """The API server cannot be reached (connection refused, DNS, TLS, timeout)."""
