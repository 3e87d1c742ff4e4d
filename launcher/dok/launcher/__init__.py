"""The client side of dok (package dok.launcher) — the `dok` CLI, Job/RBAC manifests, the Kubernetes adapter,
and run handles.

Library API (what `DaskOnKubernetesEnvironment.setup()` / `.execute()` call):

    setup(env, *, namespace=None, kube=None, kubeconfig=None) -> SetupResult
    execute(env, *, parameters=None, identifier=None, namespace=None, ...) -> RunHandle
    RunHandle: .identifier, .wait(stream_logs=True) -> State, .cancel(), .cleanup(), .status(), .logs()

The CLI is `dok.launcher.cli:main` (console script `dok`, Bazel target `//launcher:dok`). Names are
imported lazily so `import dok.launcher` stays cheap (no kubernetes client import until it is used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dok.core.environment import DaskOnKubernetesEnvironment

    from .handle import RunHandle
    from .prepare import SetupResult

__all__ = ["RunHandle", "SetupResult", "execute", "main", "setup", "exceptions"]


def setup(env: DaskOnKubernetesEnvironment | None = None, **kwargs: Any) -> SetupResult:
    """Create or verify the runner's ServiceAccount/Role/RoleBinding; check the caller's permissions."""
    from .prepare import setup as _setup

    return _setup(env, **kwargs)


def execute(env: DaskOnKubernetesEnvironment, **kwargs: Any) -> RunHandle:
    """Launch a run of the built environment's flow as a Job; returns a RunHandle."""
    from .launch import execute as _execute

    return _execute(env, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """The `dok` command line; returns the exit code."""
    from .cli import main as _main

    return _main(argv)


def __getattr__(name: str) -> Any:
    if name == "RunHandle":
        from .handle import RunHandle

        return RunHandle
    if name == "SetupResult":
        from .prepare import SetupResult

        return SetupResult
    if name == "exceptions":
        from . import exceptions

        return exceptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
