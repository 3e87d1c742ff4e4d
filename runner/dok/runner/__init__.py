"""The in-pod entrypoint of dok: a Dask scheduler in the job pod, worker pods via SpecCluster + Adaptive.

`python -m dok.runner /opt/dok/flow.dokflow` (the image's entrypoint) or `dok.runner.run(env, path)` (behind
`DaskOnKubernetesEnvironment.run(path)`). See `dok.runner.run` for the lifecycle and exit codes,
`dok.runner.backend` for the seam through which workers are obtained, `dok.runner.worker` for the worker
pods' entrypoint.

The names below are imported on first use: every worker pod runs `python -m dok.runner.worker`, which
imports this package first, and must not pay for dok.core and the run machinery it never uses (about
0.2 CPU-seconds per worker, measured by tools/bench/worker_start.py). As with an eager
`from dok.runner.run import run`, the package's `run` is the function, also once the `dok.runner.run`
module has been imported by its full name (the import system then sets the package attribute to the
module; `_Package` keeps the function).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dok.runner.exceptions import RunnerError
    from dok.runner.run import RunOutcome, execute, run

__all__ = ["run", "execute", "RunOutcome", "RunnerError"]
_FROM = {"run": "dok.runner.run", "execute": "dok.runner.run", "RunOutcome": "dok.runner.run",
         "RunnerError": "dok.runner.exceptions"}


def __getattr__(name: str) -> Any:
    module_name = _FROM.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dok.runner' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    setattr(sys.modules[__name__], name, value)
    return value


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "run" and isinstance(value, types.ModuleType):
            value = value.run  # the submodule dok.runner.run was imported: the package's `run` stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
