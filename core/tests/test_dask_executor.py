"""DaskExecutor specifics: ways to connect, fetching results, data staying on the cluster, closing."""

from __future__ import annotations

import os
import threading
import time

import pytest

from dok.core import Cancelled, DaskExecutor, DokError, Flow, task


@task
def square(x):
    return x * x


@task
def numbers(n):
    return list(range(n))


@task
def total(xs):
    return sum(xs)


def fanout(n=5):
    with Flow("fanout") as flow:
        total(square.map(numbers(n)))
    return flow


def test_address_string_and_cluster_object(dask_client):
    address = dask_client.scheduler.address
    assert fanout().run(executor=DaskExecutor(address)).result == {"total": 30}

    class ClusterLike:  # anything with a scheduler_address, like SpecCluster/KubeCluster
        scheduler_address = address

    assert fanout(4).run(executor=DaskExecutor(ClusterLike())).result == {"total": 14}


def test_temporary_local_cluster():
    executor = DaskExecutor(cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": 1})
    assert fanout(3).run(executor=executor).result == {"total": 5}


def test_bad_address_type():
    with pytest.raises(DokError, match="DaskExecutor.*got int"):
        DaskExecutor(8786)
    with pytest.raises(ValueError, match="fetch"):
        DaskExecutor(fetch="some")


def test_only_reference_results_are_fetched_unless_asked(dask_client):
    state = fanout().run(executor=DaskExecutor(dask_client))
    assert state.task_states["total"].result == 30
    assert state.task_states["numbers"].result is None  # stayed on the cluster
    state = fanout().run(executor=DaskExecutor(dask_client, fetch="all"))
    assert state.task_states["numbers"].result == [0, 1, 2, 3, 4]
    assert state.task_states["square"].result == [0, 1, 4, 9, 16]
    assert state.task_states["square[3]"].result == 9


def test_tasks_receive_futures_not_client_data(dask_client):
    """The client never holds intermediate results: only terminal results and map lengths come back."""
    seen_keys = []
    real_gather = dask_client.gather

    def spy(futures, *args, **kwargs):
        seen_keys.append(futures)
        return real_gather(futures, *args, **kwargs)

    dask_client.gather = spy
    try:
        state = fanout(6).run(executor=DaskExecutor(dask_client))
    finally:
        del dask_client.gather
    assert state.result == {"total": 55}
    assert len(seen_keys) == 1 and len(seen_keys[0]) == 1  # one gather, of the one reference task
    assert str(seen_keys[0][0].key).startswith("total-")


def test_graph_is_not_left_on_the_cluster(dask_client):
    fanout(10).run(executor=DaskExecutor(dask_client))
    deadline = time.time() + 5
    while time.time() < deadline and dask_client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
        time.sleep(0.05)
    assert dask_client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0


def test_closing_the_client_cancels_the_run(dask_client):
    from distributed import Client

    @task
    def slow(x):
        time.sleep(0.5)
        return x

    with Flow("closing") as flow:
        total(slow.map(list(range(12))))
    client = Client(dask_client.scheduler.address, set_as_default=False)
    timer = threading.Timer(0.3, client.close)
    timer.start()
    t0 = time.time()
    state = flow.run(executor=DaskExecutor(client))
    timer.join()
    assert time.time() - t0 < 3
    assert isinstance(state, Cancelled), state
    assert isinstance(state.task_states["total"], Cancelled)


def test_worker_processes_run_tasks_defined_here():
    """Real pickling to separate worker processes: the wrapper, the TaskSpec and test-module functions."""
    from distributed import Client, LocalCluster

    @task(max_retries=1)
    def fails_once_per_process(x):
        import os

        marker = f"/tmp/dok-test-{os.getpid()}-{x}"
        if x == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first attempt")
        return x + 100

    with Flow("processes") as flow:
        total(fails_once_per_process.map(numbers(4)))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                      silence_logs=50) as cluster, Client(cluster, set_as_default=False) as client:
        state = flow.run(executor=DaskExecutor(client))
        pids = client.run(lambda: __import__("os").getpid())
    for pid in pids.values():
        marker = f"/tmp/dok-test-{pid}-2"
        if os.path.exists(marker):
            os.unlink(marker)
    assert state.is_successful(), state
    assert state.result == {"total": 406}
    assert os.getpid() not in pids.values()


@task
def nbytes_plus(blob, i):
    return len(blob) + i


@task
def head(blob):
    return blob[:3]


def test_large_parameter_and_constant_are_placed_once(dask_client):
    from dok.core import Parameter, unmapped

    big = b"x" * (3 * 1024 * 1024)
    const = list(range(200_000))  # a large constant argument (~several MB by dask's sizeof)
    with Flow("large") as flow:
        blob = Parameter("blob")
        nbytes_plus.map(unmapped(blob), list(range(50)))
        head(const)
        head(blob)
    state = flow.run(parameters={"blob": big}, executor=DaskExecutor(dask_client, fetch="all"))
    assert state.is_successful(), state
    assert state.task_states["nbytes_plus"].result == [len(big) + i for i in range(50)]
    heads = sorted((repr(s.result) for n, s in state.task_states.items() if n.startswith("head")))
    assert heads == sorted([repr([0, 1, 2]), repr(b"xxx")])


def test_place_sends_once_per_value_and_leaves_small_values(dask_client):
    from dok.core.dask_executor import LARGE_VALUE_BYTES, _DaskRun

    with Flow("p") as flow:
        head([1, 2, 3])
    run = _DaskRun(dask_client, flow, {}, None, fetch_all=False)
    big = b"y" * (LARGE_VALUE_BYTES + 1)
    first, second = run.place(big), run.place(big)
    assert first is second and type(first).__name__ == "Future"
    assert first.result() == big
    small = b"z" * 10
    assert run.place(small) is small and run.place(5) == 5
    assert run.place_args((big, small), (big, small))[1] is small
    assert run.place_args({"a": big}, {"a": big})["a"] is first


def test_upstream_results_are_never_placed(dask_client):
    """A reduce over a large map receives a list of futures: that list must go as is (placing it once
    sent the futures themselves as data, lost with the worker holding them)."""
    with Flow("reduce") as flow:
        total(square.map(list(range(20_000))))
    state = flow.run(executor=DaskExecutor(dask_client))
    assert state.is_successful(), state
    assert state.result == {"total": sum(x * x for x in range(20_000))}


def test_placed_value_survives_the_loss_of_its_worker():
    from distributed import Client, LocalCluster

    from dok.core.dask_executor import LARGE_VALUE_BYTES, _DaskRun

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        with Flow("p") as flow:
            head([1])
        run = _DaskRun(client, flow, {}, None, fetch_all=False)
        big = b"w" * (LARGE_VALUE_BYTES + 1)
        fut = run.place(big)
        assert fut.result() == big
        holders = client.who_has([fut])[fut.key]
        assert holders

        async def remove(dask_scheduler=None):
            for address in holders:
                await cluster.scheduler.remove_worker(address=address, stimulus_id="test", close=True)

        client.sync(remove)
        cluster.scale(2)
        assert client.submit(len, fut).result(timeout=60) == len(big)  # recomputed from its spec


def _explode(message):
    raise RuntimeError(message)


class Bomb:
    """Fails to unpickle on the worker: an error Dask raises itself (not the task's own), like KilledWorker."""

    def __reduce__(self):
        return (_explode, ("the last worker was tcp://10.244.0.9:40123",))


@task
def use(x):
    return x


def test_platform_errors_are_explained_by_the_hook():
    from distributed import Client, LocalCluster

    seen = []

    def explain(exc):
        seen.append(str(exc))
        return "tcp://10.244.0.9:40123 is worker pod w-3, which ended: OOMKilled"

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster, Client(cluster, set_as_default=False) as client:
        with Flow("bomb") as flow:
            use(Bomb())
        state = flow.run(executor=DaskExecutor(client, explain=explain))
    bad = state.task_states["use"]
    assert bad.is_failed(), bad
    assert "worker pod w-3, which ended: OOMKilled" in bad.message, bad.message
    assert seen


def test_task_resources_reach_dask(dask_client):
    """@task(resources={"GPU": 1}) runs only on a worker with GPU: a cluster whose worker has GPU=1 runs it
    there, a map of them too; on the session's cluster (no resources) the scheduler holds such a task back."""
    from distributed import Client, LocalCluster, get_worker

    from dok.core.dask_executor import _resources
    from dok.core.flow import Node

    @task(resources={"GPU": 1})
    def where() -> dict:
        return dict(get_worker().state.total_resources)

    @task(resources={"GPU": 1})
    def square(x: int) -> int:
        return x * x

    fut = dask_client.submit(lambda: 1, resources=_resources(Node(index=0, name="n", task=where)), pure=False)
    assert _resources(Node(index=0, name="n", task=None)) is None
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                      resources={"GPU": 1}) as cluster, Client(cluster, set_as_default=False) as client:
        with Flow("gpu") as flow:
            where()
            square.map([1, 2, 3])
        state = flow.run(executor=DaskExecutor(client))
        assert state.is_successful(), state
        assert state.result == {"where": {"GPU": 1}, "square": [1, 4, 9]}
    assert not fut.done()  # no worker of the session's cluster has GPU: still waiting (the runner refuses such runs)
    fut.cancel()
