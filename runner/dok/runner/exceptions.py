"""Errors of dok.runner: one line saying what is wrong, plus a hint saying what to do.

Every error the runner raises on purpose is a `RunnerError` (a `dok.core.exceptions.DokError`). Kubernetes
SDK errors are translated where the call is made, by the shared seam `dok.kube` (its classes are re-exported here:
`KubernetesError` is `dok.kube.KubeError`). Each error knows the job pod's exit
code it maps to: the runner exits 0 when the flow succeeded, 1 when the flow failed (or was cancelled), and
3 for an infrastructure failure (bad configuration from the launcher, bundle mismatch, API errors, worker
pods that cannot start).
"""

from __future__ import annotations

try:  # core's base class, when core provides it
    from dok.core.exceptions import DokError as _Base
except Exception:  # pragma: no cover - only while core is being written
    _Base = Exception

from dok.kube.exceptions import ApiUnavailable, Conflict, Forbidden, NotFound  # noqa: F401 - re-exported
from dok.kube.exceptions import KubeError as KubernetesError  # noqa: F401 - re-exported

EXIT_SUCCESS = 0
EXIT_FLOW_FAILED = 1
EXIT_INFRA = 3


class RunnerError(_Base):
    """Base of every runner error: `message` (what is wrong), optional `hint` (what to do), optional `detail`
    (supporting text on the following lines: Kubernetes events, the tail of a log)."""

    exit_code: int = EXIT_INFRA

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        text = f"{self.message} (hint: {self.hint})" if self.hint else self.message
        return f"{text}\n{self.detail}" if self.detail else text


class ConfigError(RunnerError):
    """A setting of the job pod environment (DOK_*) is missing or malformed."""


class JobRetried(RunnerError):
    """This job pod replaces an earlier pod of the same run (Kubernetes 1.20 does not count a deleted pod
    against `backoffLimit: 0`): running the flow again would repeat its side effects, so the runner refuses."""


class WorkerStartError(RunnerError):
    """A worker could not be started or failed before joining the scheduler: names the pod and the reason."""

    def __init__(self, message: str, *, hint: str | None = None, worker: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.worker = worker
        self.reason = reason


class RunAborted(RunnerError):
    """The run was stopped from outside (SIGTERM/SIGINT) before the flow finished."""

    exit_code = EXIT_FLOW_FAILED
