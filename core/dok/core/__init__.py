"""dok.core: the flow model, States, the engine that runs a flow on Dask, flow bundles, environment spec.

    from dok.core import Flow, Parameter, task, DaskExecutor

    @task
    def square(x): return x * x

    @task
    def total(xs): return sum(xs)

    with Flow("fanout") as flow:
        n = Parameter("n", default=50)
        total(square.map(numbers(n)))

    state = flow.run(parameters={"n": 10}, executor=DaskExecutor())   # or LocalExecutor (the default)
    state.is_successful(), state.result, state.task_states["square[3]"]

Modules: `flow` (tasks, parameters, the graph), `states`, `summary` (compact State JSON), `runtime` (the
per-task wrapper run on workers), `local_executor`, `dask_executor`, `bundle`, `labels`, `names` (the name
grammars, fixed paths and ports), `runspec` (`RunSpec`: every setting of one run), `environment`, `exceptions`.
Only the standard library, dask, distributed and cloudpickle are imported.
"""

from __future__ import annotations

from . import bundle, labels, names
from .bundle import BundleInfo
from .dask_executor import DaskExecutor
from .environment import DaskOnKubernetesEnvironment
from .exceptions import BundleError, DokError, EnvironmentConfigError, FlowDefinitionError, ParameterError
from .flow import Flow, Parameter, Ref, Task, task, unmapped
from .local_executor import LocalExecutor
from .runspec import RunSpec
from .states import (
    Cancelled,
    Failed,
    Pending,
    Running,
    Skipped,
    State,
    StateKind,
    Success,
    TimedOut,
    state_from_dict,
)
from .summary import decode_summary, encode_summary

__all__ = [
    "BundleError",
    "BundleInfo",
    "Cancelled",
    "DaskExecutor",
    "DaskOnKubernetesEnvironment",
    "DokError",
    "EnvironmentConfigError",
    "Failed",
    "Flow",
    "FlowDefinitionError",
    "LocalExecutor",
    "Parameter",
    "ParameterError",
    "Pending",
    "Ref",
    "RunSpec",
    "Running",
    "Skipped",
    "State",
    "StateKind",
    "Success",
    "Task",
    "TimedOut",
    "bundle",
    "decode_summary",
    "encode_summary",
    "labels",
    "names",
    "state_from_dict",
    "task",
    "unmapped",
]
