"""Graceful drain of a worker pod: `python -m dok.runner.drain`, the worker container's preStop hook.

When a worker pod is deleted by anyone but dok (a node drain, a spot reclaim, an eviction, `kubectl delete
pod`), the kubelet runs this hook before it sends SIGTERM. The hook asks the run's scheduler to retire this
worker (`retire_workers(names=[...], close_workers=True)`): the scheduler copies the results the worker
holds to the other workers, then closes it, so they are moved instead of recomputed. It gives up after
`DOK_DRAIN_TIMEOUT` seconds (default: a few seconds under the pod's termination grace period) and always
exits 0 — a failed drain only means Dask recomputes, as it would without the hook. When dok itself
retires the worker first, the scheduler no longer knows it and the hook returns at once.

Reads `DOK_SCHEDULER_ADDRESS`, `DOK_WORKER_NAME` and `DOK_WORKER_PROCESSES` (set on every worker pod by the
runner's manifests): a pod running several worker processes retires them all (`dok.runner.worker.process_names`).
"""

from __future__ import annotations

import asyncio
import os
import sys

DEFAULT_TIMEOUT = 20.0


async def drain(address: str, name: str, *, timeout: float, processes: int = 1) -> str:
    from distributed.core import rpc

    from dok.runner.worker import process_names

    names = process_names(name, processes)
    scheduler = rpc(address, timeout=min(5.0, timeout))  # connect timeout
    try:
        retired = await asyncio.wait_for(
            scheduler.retire_workers(names=names, close_workers=True, remove=True), timeout)
    finally:
        await scheduler.close_rpc()
    if not retired:
        return f"{name}: nothing to retire"
    what = name if processes <= 1 else f"{name} ({len(retired)} of its {processes} worker processes)"
    return f"retired {what}: its results moved to other workers"


def main() -> int:
    address = os.environ.get("DOK_SCHEDULER_ADDRESS", "")
    name = os.environ.get("DOK_WORKER_NAME", "")
    if not address or not name:
        print("dok drain: DOK_SCHEDULER_ADDRESS/DOK_WORKER_NAME not set; nothing to do", file=sys.stderr)
        return 0
    try:
        timeout = float(os.environ.get("DOK_DRAIN_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    try:
        processes = max(1, int(os.environ.get("DOK_WORKER_PROCESSES", "1")))
    except ValueError:
        processes = 1
    try:
        print(f"dok drain: {asyncio.run(drain(address, name, timeout=timeout, processes=processes))}",
              file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - Dask recomputes what could not be moved
        print(f"dok drain: could not retire {name} gracefully ({type(exc).__name__}: {exc}); "
              f"its results will be recomputed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
