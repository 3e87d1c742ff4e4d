"""Errors of dok.runner: one line saying what is wrong, plus a hint saying what to do.

Every error the runner raises on purpose is a `RunnerError` (a `dok.core.exceptions.DokError`). Kubernetes
SDK errors are translated where the call is made, by the shared seam `dok.kube` (its classes are re-exported here:
`KubernetesError` is `dok.kube.KubeError`). Each error knows the job pod's exit
code it maps to: the runner exits 0 when the flow succeeded, 1 when the flow failed (or was cancelled), and
3 for an infrastructure failure (bad configuration from the launcher, bundle mismatch, API errors, worker
pods that cannot start).
"""

from __future__ import annotations

from dok.core.exceptions import EXIT_FLOW_FAILED, EXIT_INFRA, DokError
from dok.kube.exceptions import ApiUnavailable, Conflict, Forbidden, NotFound  # noqa: F401 - re-exported
from dok.kube.exceptions import KubeError as KubernetesError  # noqa: F401 - re-exported


class RunnerError(DokError):
    """Base of every runner error: core's `DokError` (`message`, optional `hint`, optional `detail`: supporting
    text on the following lines such as Kubernetes events or the tail of a log), exit code 3 by default."""

    exit_code = EXIT_INFRA


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


class UnsatisfiableResources(ConfigError):
    """A task asks for Dask worker resources (`@task(resources={"GPU": 1})`) no worker pod of the run has:
    the run fails at once instead of waiting for a worker that can never come (exit code 1)."""

    exit_code = EXIT_FLOW_FAILED
