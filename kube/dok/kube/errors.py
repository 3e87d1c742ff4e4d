"""One translation of Kubernetes client failures into `dok.kube.exceptions`, each with a hint.

`translate(exc, action=…, host=…, hints=…)` is called where the API call is made (by `dok.kube.client.Kube`):
`action` names what was being done ("create Job ns/x"), `host` the API server, and `Hints` carries the
advice that depends on who calls (the CLI user vs. the runner's service account). `is_transient` says which
failures are worth retrying (connection errors, HTTP 429 and 5xx) — the retry policy (`dok.kube.retry`) asks it.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from .exceptions import (ApiUnavailable, ClusterUnreachable, Conflict, Forbidden, Invalid, KubeconfigError, KubeError,
                         NotFound, Unauthorized)

TRANSIENT_STATUS = frozenset({0, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class Hints:
    """What to tell the caller to do, per kind of failure (the caller's situation decides)."""

    forbidden: str = "ask a cluster admin for this permission"
    unreachable: str = "is it running, and is this the right kubeconfig/context?"
    unavailable: str = "retry; check the cluster's health"
    not_found: str = "check the name and the namespace"
    invalid: str = "fix the value it names"


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a client ApiException (0 when it has none), None for any other exception."""
    from kubernetes.client.exceptions import ApiException

    if not isinstance(exc, ApiException):
        return None
    return int(getattr(exc, "status", 0) or 0)


def is_not_found(exc: BaseException) -> bool:
    return api_status(exc) == 404 or isinstance(exc, NotFound)


def is_connection_error(exc: BaseException) -> bool:
    import urllib3.exceptions

    return isinstance(exc, (urllib3.exceptions.HTTPError, OSError, socket.timeout, ssl.SSLError))


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the API server unreachable (but not a certificate mismatch), 429, 5xx."""
    status = api_status(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(exc, (ClusterUnreachable, ApiUnavailable)):
        return True
    return is_connection_error(exc) and "certificate" not in _connection_reason(exc)


def retry_after(exc: BaseException | None) -> float | None:
    """The server's Retry-After (seconds) on a 429/503, if it sent one."""
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        if text.strip():
            return text.strip().splitlines()[0][:300]
    text = str(getattr(exc, "reason", "") or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connection_reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host",
                   "certificate verify failed", "Connection reset"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text.split(": ", 1)[-1][:200] or type(exc).__name__


def translate(exc: BaseException, *, action: str, host: str | None = None, hints: Hints = Hints()) -> KubeError:
    """The dok.kube error for `exc`, raised while doing `action` (e.g. "create Job ns/x") against `host`."""
    if isinstance(exc, KubeError):
        return exc
    where = f" at {host}" if host else ""
    status = api_status(exc)
    if status is not None:
        message = _status_message(exc)
        if status == 401:
            return Unauthorized(f"{action}: the cluster{where} rejected our credentials (401): {message}",
                                hint="check the kubeconfig's user (certificate or token)", status=401,
                                reason="Unauthorized")
        if status == 403:
            return Forbidden(f"{action}: forbidden: {message}", hint=hints.forbidden, status=403, reason="Forbidden")
        if status == 404:
            return NotFound(f"{action}: not found: {message}", hint=hints.not_found, status=404, reason="NotFound")
        if status == 409:
            return Conflict(f"{action}: already exists: {message}", hint="another object has this name",
                            status=409, reason="AlreadyExists")
        if status in (400, 422):
            return Invalid(f"{action}: rejected as invalid by the API server (HTTP {status}): {message}",
                           hint=hints.invalid, status=status, reason="Invalid")
        if status in TRANSIENT_STATUS or status > 500:
            return ApiUnavailable(f"{action}: API server error (HTTP {status}): {message}", hint=hints.unavailable,
                                  status=status, reason="Unavailable")
        return KubeError(f"{action}: HTTP {status}: {message}", status=status)
    if is_connection_error(exc):
        reason = _connection_reason(exc)
        if "certificate" in reason or "ssl" in reason.lower():
            hint = ("the kubeconfig's CA or client certificate does not match the server (cluster recreated?); "
                    "use a fresh kubeconfig")
        else:
            hint = hints.unreachable
        return ClusterUnreachable(f"cluster unreachable{where} ({action}: {reason})", hint=hint)
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, ConfigException):
        return KubeconfigError(f"invalid kubeconfig: {exc}", hint="fix the kubeconfig or pass --kubeconfig")
    return KubeError(f"{action}: {type(exc).__name__}: {exc}")
