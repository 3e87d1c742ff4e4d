"""Errors of dok.builder: one line saying what is wrong, plus a hint saying how to fix it.

Every error raised by `dok.builder.build` is a `BuilderError` (a `dok.core.exceptions.DokError`); docker SDK
and registry errors are translated where the call is made, so callers (the `dok` CLI) print
`str(error)` and exit non-zero instead of showing a stack trace.
"""

from __future__ import annotations

from dok.core.exceptions import DokError


class BuilderError(DokError):
    """Base class: `message` (what is wrong) and `hint` (what to do); `str()` joins them."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        self.message = message
        self.hint = hint
        self.detail = detail  # e.g. the tail of pip's output; shown below the one-line message
        super().__init__(message)

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        if self.detail:
            text += "\n" + self.detail
        return text


class DockerUnavailableError(BuilderError):
    """The docker daemon does not answer (not running, no permission on the socket, SDK missing)."""


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


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or asked for some and none were given)."""


class PushFailedError(RegistryError):
    """The push started but did not finish."""
