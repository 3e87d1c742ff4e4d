"""Container resources: Kubernetes quantities, dok's default requests and limits, and what a Dask worker
derives from its container's resources.

    cpu_cores("250m") == 0.25;  memory_bytes("1Gi") == 1073741824;  memory_bytes("1G") == 10**9
    worker_nthreads({"requests": {"cpu": "1500m"}}) == 2        # the CPU limit, else the request, rounded up
    worker_memory_limit({"limits": {"memory": "2Gi"}}) == 2147483648   # the container's memory limit

Defaults (`DEFAULT_JOB_RESOURCES`, `DEFAULT_WORKER_RESOURCES`, the defaults of RunSpec's `resources` and
`worker_resources`): without requests a pod is BestEffort — the first evicted under node pressure, and
refused outright in namespaces whose LimitRange or ResourceQuota requires requests. So every dok pod asks
for a little CPU and memory and has a memory limit:

- CPU: a 100m request and no CPU limit. The request is the pod's share when the node is busy; a CPU limit
  would throttle the Dask threads even on an idle node. 100m keeps dok's own e2e load — three concurrent
  runs of a job pod and two workers, beside other sessions — schedulable on a 2-CPU node. On a real cluster
  ask for what the tasks need (`worker_resources={"requests": {"cpu": "2"}, ...}`): the worker's `--nthreads`
  follows it.
- Memory: job pod 512Mi request / 2Gi limit (the Dask scheduler, the flow's engine and the results it
  collects), worker 1Gi request / 2Gi limit. The limit bounds a runaway task to its own pod (OOM-killed,
  which dok reports as a lost worker) instead of starving the node; the worker's `--memory-limit` is that
  limit, so Dask spills to disk and pauses before the kernel kills it (dask's "auto" would take a share of
  it by thread count instead).

A per-run `resources` / `worker_resources` value replaces the default as a whole (what you give is what the
container gets, as in a pod spec); `{}` means none at all (BestEffort). A request above its limit is
refused when the run is specified, before Kubernetes would refuse the pod.

GPUs: a worker container with `nvidia.com/gpu: N` (or another `GPU_RESOURCE_NAMES` entry) is started with
`dask worker --resources GPU=N` (`dask_worker_resources`), so tasks declared `@task(resources={"GPU": 1})`
run only there; `missing_task_resources` names the tasks no worker of the run could ever run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "DEFAULT_JOB_RESOURCES",
    "DEFAULT_WORKER_RESOURCES",
    "GPU_RESOURCE_NAMES",
    "cpu_cores",
    "dask_worker_resources",
    "is_quantity",
    "memory_bytes",
    "missing_task_resources",
    "quantity",
    "requests_above_limits",
    "worker_memory_limit",
    "worker_nthreads",
]

DEFAULT_JOB_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}
DEFAULT_WORKER_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "1Gi"},
    "limits": {"memory": "2Gi"},
}

# Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity): a decimal number with an optional
# binary (Ki..Ei), decimal (m, k, M..E) or exponent (e3, E-2) suffix.
_QUANTITY = re.compile(r"^(?P<number>[+-]?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|"
                       r"[eE][+-]?\d+)?$")
_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    **{s: Decimal(2) ** (10 * (i + 1)) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def quantity(value: str | int | float) -> Decimal:
    """The value of a Kubernetes quantity in its base unit (cores, bytes); ValueError when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '1Gi', '1e9')")
    suffix = match["suffix"] or ""
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from None
    scale = Decimal(10) ** int(suffix[1:]) if suffix[:1] in ("e", "E") and len(suffix) > 1 else _SUFFIX[suffix]
    return number * scale


def is_quantity(value: Any) -> bool:
    try:
        return quantity(value) >= 0
    except ValueError:
        return False


def cpu_cores(value: str | int | float) -> float:
    """'250m' -> 0.25, '2' -> 2.0."""
    return float(quantity(value))


def memory_bytes(value: str | int | float) -> int:
    """'1Gi' -> 1073741824, '1G' -> 10**9, '1.5Mi' -> 1572864 (rounded up to a whole byte, as Kubernetes)."""
    return math.ceil(quantity(value))


def requests_above_limits(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The resources whose request exceeds its limit (Kubernetes refuses such a container), e.g.
    ["memory: request 4Gi > limit 2Gi"]."""
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    return [f"{name}: request {requests[name]} > limit {limits[name]}" for name in sorted(set(requests) & set(limits))
            if quantity(requests[name]) > quantity(limits[name])]


def worker_nthreads(resources: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Threads for a Dask worker in a container with these resources: its CPU limit, else its CPU request,
    rounded up to whole cores (at least 1); 1 without either."""
    for kind in ("limits", "requests"):
        cpu = ((resources or {}).get(kind) or {}).get("cpu")
        if cpu is not None and is_quantity(cpu):
            return max(1, math.ceil(cpu_cores(cpu)))
    return 1


def worker_memory_limit(resources: Mapping[str, Mapping[str, Any]] | None) -> int | None:
    """The Dask worker's memory limit in bytes: its container's memory limit, None without one."""
    memory = ((resources or {}).get("limits") or {}).get("memory")
    if memory is None or not is_quantity(memory) or memory_bytes(memory) <= 0:
        return None
    return memory_bytes(memory)


# Extended resources that give a Dask worker abstract resources (`dask worker --resources NAME=N`), so that
# `@task(resources={"GPU": 1})` runs only on workers whose pod has a GPU.
GPU_RESOURCE_NAMES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")


def dask_worker_resources(resources: Mapping[str, Mapping[str, Any]] | None) -> dict[str, float]:
    """The Dask worker resources of a container with these Kubernetes resources: {"GPU": N} for N GPUs
    (limits, else requests, of `GPU_RESOURCE_NAMES`, summed); {} without any."""
    gpus = 0.0
    for name in GPU_RESOURCE_NAMES:
        for kind in ("limits", "requests"):
            value = ((resources or {}).get(kind) or {}).get(name)
            if value is not None and is_quantity(value):
                gpus += float(quantity(value))
                break
    return {"GPU": gpus} if gpus > 0 else {}


def process_threads(nthreads: int, processes: int) -> int:
    """Each of a pod's `processes` Dask workers' share of the pod's `nthreads` threads: at least one."""
    return max(1, nthreads // max(1, processes))


def process_share(*, nthreads: int, memory_limit: int | None, resources: Mapping[str, float],
                  processes: int) -> tuple[int, int | None, dict[str, float]]:
    """What each of a pod's `processes` Dask workers gets of the pod's threads (`process_threads`), memory
    limit (bytes) and Dask resources: an equal share (`worker_processes`: several workers per pod)."""
    n = max(1, processes)
    return (process_threads(nthreads, n), None if memory_limit is None else memory_limit // n,
            {name: amount / n for name, amount in resources.items()})


def missing_task_resources(needs: Mapping[str, Mapping[str, float]], has: Mapping[str, float]) -> list[str]:
    """The tasks (name -> Dask resources they ask for) no worker with resources `has` can ever run, as
    messages like "task 'train' needs GPU=1, a worker has GPU=0"."""
    out = []
    for task_name, wanted in sorted(needs.items()):
        for resource, amount in sorted(wanted.items()):
            if has.get(resource, 0) < amount:
                out.append(f"task {task_name!r} needs {resource}={amount:g}, a worker has "
                           f"{resource}={has.get(resource, 0):g}")
    return out
