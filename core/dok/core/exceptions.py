"""Errors raised by dok, and the exit codes they map to.

Every error dok raises on purpose is a `DokError`: a one-line `message` naming the offending thing (task,
parameter, argument, file), an optional `hint` saying how to fix it, an optional `detail` (supporting text
shown on the following lines: the tail of a log, Kubernetes events) and the `exit_code` a process reports
for it. The packages' bases (`LauncherError`, `RunnerError`, `BuilderError`) subclass it, so the CLI reads
the exit code from the error itself and never asks which package raised it.

Exit codes (the contract of the `dok` CLI and of the job pod's runner): 0 the flow succeeded (or the command
did its job), 1 the flow failed, 2 usage or configuration error, 3 infrastructure error, 130 interrupted.
"""

from __future__ import annotations

__all__ = [
    "EXIT_FLOW_FAILED",
    "EXIT_INFRA",
    "EXIT_INTERRUPTED",
    "EXIT_SUCCESS",
    "EXIT_USAGE",
    "BundleError",
    "DokError",
    "EnvironmentConfigError",
    "FlowDefinitionError",
    "ParameterError",
    "SecretEnvVarWarning",
]

EXIT_SUCCESS = 0
EXIT_FLOW_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRA = 3
EXIT_INTERRUPTED = 130


class DokError(Exception):
    """Base class of every error dok raises on purpose: `message`, `hint`, `detail` and `exit_code`.

    `exit_code` defaults to the class's (usage error, 2, unless a subclass says otherwise); pass
    `exit_code=` to override it for one error. `str()` is the message, `(hint: …)` and the detail lines."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str = "", *, hint: str | None = None, detail: str | None = None,
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail
        if exit_code is not None:
            self.exit_code = exit_code  # this error's own code

    def __str__(self) -> str:
        text = f"{self.message} (hint: {self.hint})" if self.hint else self.message
        return f"{text}\n{self.detail}" if self.detail else text


class FlowDefinitionError(DokError, ValueError):
    """The flow graph is wrong: a cycle, a task called outside `with Flow(...)`, a bad task option, ..."""


class ParameterError(DokError, ValueError):
    """A flow parameter is wrong: duplicate name, unknown name passed to `run`, missing required value."""


class BundleError(DokError):
    """A flow bundle cannot be written or loaded: corrupted, truncated, or written by other versions."""


class EnvironmentConfigError(DokError, ValueError):
    """A `DaskOnKubernetesEnvironment` (or run setting) has a value that is not allowed."""


class SecretEnvVarWarning(UserWarning):
    """An `env_vars` name looks like a secret: env_vars are baked into the image, where anyone who can pull
    it can read them. Pass the value from a Kubernetes Secret instead (`dok run --secret-env NAME=SECRET:KEY`)."""
