"""Worker churn under the engine: task runs whose data is lost with a worker that left are recomputed by Dask
and recorded by their final outcome only — never as a failure, never as "NoneType: None"."""

from __future__ import annotations

import time

from distributed import Client, LocalCluster

from dok.core import DaskExecutor, Flow, task


@task
def inc(x):
    time.sleep(0.002)
    return x + 1


@task
def total(xs):
    return sum(xs)


@task
def boom(x):
    if x == 7:
        raise ValueError("seven is not allowed")
    return x


def remove_a_holder(cluster: LocalCluster, client: Client) -> str | None:
    """Remove a worker that holds results, without a graceful retirement (its data is lost, as when a pod
    is killed), and ask for a replacement. Returns its address, None when no worker holds anything."""
    scheduler = cluster.scheduler
    holders = [a for a, ws in scheduler.workers.items() if ws.has_what]
    if not holders or len(scheduler.workers) < 2:
        return None
    victim = max(holders, key=lambda a: len(scheduler.workers[a].has_what))

    async def remove() -> None:
        await scheduler.remove_worker(address=victim, stimulus_id="test-churn", close=True)

    names = [k for k, w in cluster.workers.items() if getattr(w, "address", None) == victim]
    client.sync(remove)
    for name in names:  # the cluster asks for a replacement, as dok's runner does
        cluster.worker_spec.pop(name, None)
    cluster.scale(3)
    return victim


def test_lost_results_are_recomputed_not_failed():
    n = 1500
    for _ in range(3):
        with LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            with Flow("churn") as flow:
                total(inc.map(list(range(n))))
            removed: list[str] = []
            seen: list[tuple[str, str]] = []

            def on_state(name: str, s, removed=removed, seen=seen) -> None:
                seen.append((name, type(s).__name__))
                if len(seen) in (150, 500, 900):  # called on the client's thread, between completions
                    victim = remove_a_holder(cluster, client)
                    if victim:
                        removed.append(victim)

            state = flow.run(executor=DaskExecutor(client), on_task_state=on_state)
            failed = {k: str(s) for k, s in state.task_states.items() if not s.is_successful()}
            assert failed == {}, failed
            assert state.is_successful(), state
            assert state.result == {"total": sum(range(1, n + 1))}
            assert all("NoneType" not in str(s) for s in state.task_states.values())
            assert len(seen) == n + 2  # every task run reported exactly once (children, map parent, total)
            assert removed, "the churn thread removed no worker: the test did not test anything"


def test_genuine_failure_still_fails_with_traceback_under_churn():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        with Flow("one-bad") as flow:
            boom.map(list(range(20)))
        state = flow.run(executor=DaskExecutor(client))
        assert not state.is_successful()
        bad = state.task_states["boom[7]"]
        assert bad.is_failed() and "seven is not allowed" in str(bad)
        assert bad.traceback and "ValueError" in (bad.exc_type or "")
        assert all(state.task_states[f"boom[{i}]"].is_successful() for i in range(20) if i != 7)
