"""Errors of dok.builder: one line saying what is wrong, plus a hint saying how to fix it.

Every error raised by `dok.builder.build` is a `BuilderError` (a `dok.core.exceptions.DokError`); docker SDK
and registry errors are translated where the call is made, so callers (the `dok` CLI) print
`str(error)` and exit non-zero instead of showing a stack trace.
"""

from __future__ import annotations

from dok.core.exceptions import EXIT_INFRA, EXIT_USAGE, DokError


class BuilderError(DokError):
    """Base class: core's `DokError` — `message` (what is wrong), `hint` (what to do), `detail` (e.g. the tail
    of pip's output, shown below the one-line message). Bad input is a usage error (exit code 2); an
    unreachable docker daemon or registry, or a push that did not finish, is an infrastructure error (3)."""

    exit_code = EXIT_USAGE


class DockerUnavailableError(BuilderError):
    """The docker daemon does not answer (not running, no permission on the socket, SDK missing)."""

    exit_code = EXIT_INFRA


class InvalidInputError(BuilderError):
    """Bad environment settings: image name/tag, files, env_vars, dependency specs."""


class InvalidImageReferenceError(InvalidInputError):
    """An image name, tag or registry URL that docker would reject."""


class MissingFileError(InvalidInputError):
    """An entry of `files` whose source path does not exist."""


class BaseImageError(BuilderError):
    """The base image is neither present locally nor pullable, or is unusable (no python3)."""


class BuildFailedError(BuilderError):
    """A Dockerfile step failed; `step` names it and `detail` has the tail of its output."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None,
                 step: str | None = None) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.step = step


class DependencyInstallError(BuildFailedError):
    """pip could not install the pinned runtime dependencies or `python_dependencies`."""


class HealthCheckError(BuildFailedError):
    """The build-time health check found the image incompatible with this client (Python, versions, bundle)."""


class RegistryError(BuilderError):
    """Base for registry problems."""


class RegistryUnreachableError(RegistryError):
    """The registry does not answer (wrong URL, not running, TLS trouble)."""

    exit_code = EXIT_INFRA


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or asked for some and none were given)."""


class PushFailedError(RegistryError):
    """The push started but did not finish."""

    exit_code = EXIT_INFRA
