"""Errors raised by dok.core.

Every error is a `DokError`. Messages name the offending thing (task, parameter, argument, file) and say
how to fix it, because they are usually read by someone who just typed the code that caused them.
"""

from __future__ import annotations


class DokError(Exception):
    """Base class of every error dok.core raises on purpose."""


class FlowDefinitionError(DokError, ValueError):
    """The flow graph is wrong: a cycle, a task called outside `with Flow(...)`, a bad task option, ..."""


class ParameterError(DokError, ValueError):
    """A flow parameter is wrong: duplicate name, unknown name passed to `run`, missing required value."""


class BundleError(DokError):
    """A flow bundle cannot be written or loaded: corrupted, truncated, or written by other versions."""


class EnvironmentConfigError(DokError, ValueError):
    """A `DaskOnKubernetesEnvironment` argument has a value that is not allowed."""


class SecretEnvVarWarning(UserWarning):
    """An `env_vars` name looks like a secret: env_vars are baked into the image, where anyone who can pull
    it can read them. Pass the value from a Kubernetes Secret instead (`dok run --secret-env NAME=SECRET:KEY`)."""
