"""Errors raised by dok.launcher, each with the CLI exit code it maps to and a hint that says what to do.

Exit codes (the CLI's contract): 0 the flow succeeded, 1 the flow failed, 2 usage or configuration error
(bad file, bad parameter, unknown identifier, missing permission), 3 infrastructure error (cluster
unreachable, image pull failure, job pod deleted, …), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

from dok.core.exceptions import EXIT_INFRA, EXIT_USAGE, DokError

# Failed Kubernetes calls raise the shared seam's errors (one translation, in dok.kube), with these exit codes:
# 2 for 401/403/404/409/400/422 and kubeconfig problems, 3 for an unreachable or failing API server. The two
# the launcher also raises itself are re-exported under their launcher names.
from dok.kube.exceptions import ApiUnavailable, ClusterUnreachable  # noqa: F401 - re-exported


class LauncherError(DokError):
    """Base of every launcher error: a one-line message, an optional hint, and the CLI exit code (core's
    `DokError`; the exit codes are core's `EXIT_*`)."""

    exit_code = EXIT_USAGE

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(LauncherError):
    """The command line or a library argument is wrong (bad file, attribute, parameter, option)."""


class ConfigError(LauncherError):
    """The configuration does not work: no kubeconfig, namespace missing, environment not built, …"""


class PermissionDenied(ConfigError):
    """The caller (or the runner's service account) lacks a Kubernetes permission; names which."""


class RunNotFound(ConfigError):
    """No run (Job) with this identifier in the namespace."""


class RunFinished(ConfigError):
    """The run has ended: what needs it running (its dashboard) is gone with it."""


class RunNotRunning(ConfigError):
    """The run exists but its job pod does not run yet."""


class InfrastructureError(LauncherError):
    """The platform failed, not the flow: cluster unreachable, image pull failure, job pod deleted, …"""

    exit_code = EXIT_INFRA


class ImagePullError(InfrastructureError):
    """The job pod's image cannot be pulled."""


class PodLost(InfrastructureError):
    """The job pod disappeared or ended without reporting the flow's State."""


class WaitTimeout(InfrastructureError):
    """Waiting for the run exceeded the given timeout."""


class TTLIgnoredWarning(UserWarning):
    """The cluster dropped the Job's ttlSecondsAfterFinished (TTLAfterFinished not enabled): the finished
    Job stays until `dok cleanup` (or `dok run` without --detach/--keep) deletes it."""


class ResultsNotFound(ConfigError):
    """A run's full results are not where they should be (no result location, not written, not readable)."""
