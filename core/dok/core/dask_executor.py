"""`DaskExecutor`: runs a flow on any Dask cluster, every task run as a Dask future.

    DaskExecutor()                          # a temporary LocalCluster for this run
    DaskExecutor("tcp://scheduler:8786")    # a scheduler address
    DaskExecutor(client)                    # an existing distributed.Client (left open)
    DaskExecutor(cluster)                   # a cluster object (LocalCluster, SpecCluster, ...; left open)

How a run works, and why it is cheap:

- The graph is submitted up front in topological order. A task's inputs are its upstream *futures*, so
  data moves worker to worker and never through the client. A map's children are submitted in one
  `client.map` call with explicit keys (no tokenizing); the children of a map over another map depend
  child by child on the upstream's children, so pipelines do not wait for a whole stage.
- Mapping over a task's result needs its length: the client submits a `len` future for it (only that
  integer comes back), then per-item `getitem` futures; everything downstream of that map waits, the
  rest of the graph is already running.
- On the workers, `dok.core.runtime.run_task` applies retries and timeouts. A failed run raises
  `TaskFailed`; Dask then never runs its dependents and reports the same exception for them, which the
  client turns into `Skipped(upstream=<the failed run>)` without any extra round trip.
- The client follows completions with `distributed.as_completed` (handed whole batches of futures on
  the event loop's thread), builds each task run's State and calls `on_task_state(name, state)` once per
  task run as it finishes (no Running states: no per-task round trips); at the end it gathers only the reference (terminal) tasks' results
  (`fetch="all"` gathers every result).
- KeyboardInterrupt, or the client closing, cancels the outstanding futures: unfinished runs and the
  flow end `Cancelled`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import operator
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Literal

from .exceptions import DokError
from .flow import Flow, Node, Ref, substitute, unmapped, walk_refs
from .local_executor import call_back, map_length_error
from .dask_maps import LayoutColumn, MapLayouts
from .scaling import LEN_KEY_PREFIX
from .runtime import TaskFailed, compute_times, run_task, run_task_after
from .states import (
    Cancelled,
    Failed,
    State,
    Success,
    failure_state,
    flow_state,
    map_parent_state,
    skipped_state,
)

__all__ = ["DaskExecutor"]

OnTaskState = Callable[[str, State], None]


class DaskExecutor:
    """Run flows on a Dask cluster; see the module docstring for what `address` may be."""

    def __init__(
        self,
        address: Any = None,
        *,
        cluster_kwargs: dict[str, Any] | None = None,
        fetch: Literal["reference", "all"] = "reference",
        explain: Callable[[BaseException], str | None] | None = None,
    ) -> None:
        if fetch not in ("reference", "all"):
            raise ValueError(f"fetch must be 'reference' or 'all', got {fetch!r}")
        if not (address is None or isinstance(address, str) or _is_client(address) or _is_cluster(address)):
            raise DokError(
                f"DaskExecutor(address=...) takes None (a temporary LocalCluster), a scheduler address "
                f"string, a distributed.Client or a cluster object, got {type(address).__name__}"
            )
        self.address = address
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.fetch = fetch
        # Adds what the platform knows to an error Dask raised for a task (the runner: which worker pod an
        # address in a KilledWorker was, and why it ended).
        self.explain = explain

    def __repr__(self) -> str:
        what = self.address if isinstance(self.address, str) else type(self.address).__name__
        return f"DaskExecutor({what!r})" if self.address is not None else "DaskExecutor()"

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A `distributed.Client` for one run; whatever this executor created is closed afterwards."""
        from distributed import Client, LocalCluster

        if _is_client(self.address):
            yield self.address
            return
        if _is_cluster(self.address):
            from distributed.deploy import Cluster

            target = self.address if isinstance(self.address, Cluster) else self.address.scheduler_address
            with Client(target, set_as_default=False) as client:
                yield client
            return
        if isinstance(self.address, str):
            with Client(self.address, set_as_default=False) as client:
                yield client
            return
        kwargs = {"dashboard_address": ":0", **self.cluster_kwargs}
        with LocalCluster(**kwargs) as cluster, Client(cluster, set_as_default=False) as client:
            yield client

    def execute(self, flow: Flow, parameters: dict[str, Any], *, on_task_state: OnTaskState | None = None) -> State:
        with self.client() as client:
            return _DaskRun(client, flow, parameters, on_task_state, fetch_all=self.fetch == "all",
                            explain=self.explain).run()


def _is_client(obj: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return False
    return isinstance(obj, Client)


class _Box:
    """Holds a large value so that Dask sends it as one opaque object (never walks into it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple:
        return (_Box, (self.value,))


def _unbox(box: _Box) -> Any:
    return box.value


def _constant(template: Any) -> bool:
    """True for an argument written in the flow as a value, False when it holds a Ref (an upstream result,
    or a parameter — a bare parameter Ref is placed through `lookup`)."""
    found: list[Ref] = []
    walk_refs(template, found)
    return not found


def _is_future(obj: Any) -> bool:
    from distributed import Future

    return isinstance(obj, Future)


def _is_cluster(obj: Any) -> bool:
    return not isinstance(obj, str) and hasattr(obj, "scheduler_address") and not _is_client(obj)


_DEFERRED = object()


# Parameters and constant arguments this large (dask.sizeof's estimate) are sent once per run (`place`).
LARGE_VALUE_BYTES = 256 * 1024
# Future statuses that are final for as long as the key's data lives; "lost" and "pending" are not (a key
# whose worker left is recomputed), so a future handed over in one of those states is followed again.
_TERMINAL = frozenset({"finished", "error", "cancelled"})


class _DaskRun(MapLayouts):
    """The client-side bookkeeping of one flow run on Dask."""

    def __init__(self, client: Any, flow: Flow, parameters: dict[str, Any], callback: OnTaskState | None,
                 *, fetch_all: bool, explain: Callable[[BaseException], str | None] | None = None) -> None:
        self.client = client
        self.explain = explain
        self.flow = flow
        self.parameters = parameters
        self.callback = callback
        self.fetch_all = fetch_all
        self.token = uuid.uuid4().hex[:8]
        self.futs: dict[int, Any] = {}  # node index -> Future (task) or list of Futures (map)
        self.owner: dict[Any, tuple[int, int]] = {}  # key -> (node index, child index or -1)
        self.names: dict[Any, str] = {}  # key -> task run name
        self.lengths: dict[int, int] = {}  # node index -> len(result), for maps over it
        self.len_keys: dict[Any, int] = {}  # key of a len future -> node index
        self.len_failed: dict[int, tuple[str, str]] = {}  # node index -> ("skip", root) | ("error", text)
        self.items: dict[int, list[Any]] = {}  # node index -> getitem futures
        self.dead: dict[int, str] = {}  # node index -> run name to blame (never submitted)
        self.children: dict[int, list[State | None]] = {}
        self.child_left: dict[int, int] = {}
        self.map_start: dict[int, float] = {}
        self.states: dict[str, State] = {}
        self.foreign: dict[str, str] = {}  # text of a non-dok error -> first run it was seen on
        self.waiting: list[Node] = []
        self.ac: Any = None
        self.to_track: list[Any] = []  # futures submitted but not yet handed to as_completed
        self.recomputed = 0  # completions seen again because their data was lost with a worker
        self.init_layouts()
        self.placed: dict[int, tuple[Any, Any]] = {}  # id(large value) -> (value, its future)
        from dask.sizeof import sizeof

        self.sizeof = sizeof

    # -- main loop -------------------------------------------------------------------------------
    def run(self) -> State:
        from distributed import as_completed

        start = time.time()
        interrupted = None
        self.ac = as_completed(loop=self.client.loop, with_results=False)
        self.waiting = [n for n in self.flow.nodes if not n.is_parameter]
        try:
            self.submit_ready()
            self.flush()
            for batch in self.ac.batches():
                for fut in batch:
                    status = fut.status  # read once: it can turn "lost" at any moment
                    if status not in _TERMINAL:
                        self.retrack(fut)
                    elif fut.key in self.summary_of:
                        self.on_summary(fut, status)
                    elif fut.key in self.len_keys:
                        if self.on_length(fut, status):
                            self.submit_ready()
                    else:
                        self.on_done(fut, status)
                # One hand-over per batch of what it submitted or follows again — before as_completed is
                # asked for more, so it never looks empty while futures are still to be followed.
                self.flush()
                if self.client.status in ("closing", "closed"):
                    interrupted = "the Dask client was closed"
                    break
        except KeyboardInterrupt:
            interrupted = "KeyboardInterrupt"
        results: dict[str, Any] = {}
        for node in self.waiting if interrupted is None else ():  # cannot happen: every wait has a len future
            self.states[node.name] = Cancelled(message="never became ready to run (dok bug: please report)")
        if interrupted is not None:
            self.cancel_rest()
        else:
            try:
                results = self.gather_results()
            except Exception as exc:  # the cluster went away while gathering
                interrupted = f"gathering results failed: {type(exc).__name__}: {exc}"
                self.cancel_rest()
        return flow_state(self.states, results=results, start=start, end=time.time(), interrupted=interrupted)

    def retrack(self, fut: Any) -> None:
        """A future as_completed handed over is no longer done: its data was lost with a worker that left
        (status "lost") or the scheduler is running it again (status "pending"). Dask recomputes it while this
        client holds the future, so it is followed again and recorded by its final outcome only."""
        self.recomputed += 1
        self.track([fut])

    def track(self, futures: list[Any]) -> None:
        self.to_track.extend(futures)

    def flush(self) -> None:
        """Hand the submitted futures to as_completed in one go, on the event loop's thread: one wake-up
        of the loop per batch instead of one cross-thread callback per future."""
        if self.to_track:
            futures, self.to_track = self.to_track, []

            async def update() -> None:
                self.ac.update(futures)

            self.client.sync(update)

    def emit(self, name: str, state: State) -> None:
        self.states[name] = state
        if self.callback is not None:
            call_back(self.callback, name, state)

    # -- submission ------------------------------------------------------------------------------
    def submit_ready(self) -> None:
        still: list[Node] = []
        for node in self.waiting:
            if self.try_submit(node) is _DEFERRED:
                still.append(node)
        self.waiting = still

    def lookup(self, index: int) -> Any:
        node = self.flow._nodes[index]
        if node.is_parameter:
            return self.place(self.parameters[node.name])
        return self.futs[index]

    def place(self, value: Any) -> Any:
        """A large plain value (a parameter, or a constant argument written in the flow, of
        `LARGE_VALUE_BYTES` or more) becomes one Dask task that returns it: it is pickled once, travels to
        the workers once each instead of once per task, and every task using it depends on that one key.
        Unlike `client.scatter`, the scheduler keeps the task's spec, so the value is recomputed (not lost)
        when the worker holding it leaves. Small values are returned as is."""
        t = type(value)
        if t in (int, float, bool, type(None), range) or _is_future(value):
            return value
        key = id(value)
        hit = self.placed.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        if self.sizeof(value) < LARGE_VALUE_BYTES:
            return value
        future = self.client.submit(_unbox, _Box(value), key=f"value-{self.token}-{len(self.placed)}", pure=False)
        self.placed[key] = (value, future)
        return future

    def place_args(self, template: Any, args: Any) -> Any:
        """`place` applied to each top-level positional argument (tuple/list) or keyword value (dict) that
        the flow wrote as a constant; arguments holding upstream results (futures) are never touched."""
        if isinstance(args, dict):
            return {k: self.place(v) if _constant(template[k]) else v for k, v in args.items()}
        return type(args)(self.place(v) if _constant(tv) else v for tv, v in zip(template, args))

    def kill(self, node: Node, root: str) -> None:
        self.dead[node.index] = root
        now = time.time()
        self.emit(node.name, skipped_state(root, at=now))

    def fail(self, node: Node, message: str) -> None:
        self.dead[node.index] = node.name
        now = time.time()
        self.emit(node.name, Failed(message=message, exc_type="MapError", exc_message=message, start=now, end=now))

    def try_submit(self, node: Node) -> Any:
        for u in node.all_upstream:
            if u in self.dead:
                self.kill(node, self.dead[u])
                return None
            if u not in self.futs and not self.flow._nodes[u].is_parameter:
                return _DEFERRED
        if not node.mapped:
            self.submit_single(node)
            return None
        columns: list[list[Any] | None] = []
        broadcast: list[Any] = []
        deferred = False
        for src in node.args:
            if isinstance(src, unmapped):
                columns.append(None)
                value = substitute(src.value, self.lookup)
                broadcast.append(self.place(value) if _constant(src.value) else value)
                continue
            broadcast.append(None)
            col = self.column(node, src)
            if col is _DEFERRED:
                deferred = True
            elif col is None:  # node already killed or failed
                return None
            columns.append(col)
        if deferred:
            return _DEFERRED
        self.submit_map(node, columns, broadcast)
        return None

    def column(self, node: Node, src: Any) -> Any:
        if not isinstance(src, Ref):
            return [substitute(item, self.lookup) for item in src]
        up = self.flow._nodes[src.index]
        if up.is_parameter:
            value = self.parameters[up.name]
            try:
                return list(value)
            except TypeError:
                self.fail(node, f"cannot map over parameter {up.name!r}: {type(value).__name__} is not iterable")
                return None
        if up.mapped:
            if src.index in self.layouts:
                return LayoutColumn(src.index, self.layouts[src.index])
            return self.futs[src.index]
        if src.index in self.len_failed:
            how, what = self.len_failed[src.index]
            if how == "skip":
                self.kill(node, what)
            else:
                self.fail(node, f"cannot map over the result of {up.name!r}: {what}")
            return None
        if src.index not in self.lengths:
            if src.index not in self.len_keys.values():
                key = f"{LEN_KEY_PREFIX}{up.name}-{self.token}"
                fut = self.client.submit(len, self.futs[src.index], key=key, pure=False)
                self.len_keys[key] = src.index
                self.track([fut])
            return _DEFERRED
        if src.index not in self.items:
            n = self.lengths[src.index]
            prefix = f"{up.name}-item-{self.token}"
            self.items[src.index] = self.client.map(
                operator.getitem, [self.futs[src.index]] * n, range(n),
                key=[(prefix, i) for i in range(n)], pure=False,
            )
        return self.items[src.index]

    def submit_single(self, node: Node) -> None:
        args = self.place_args(node.args, substitute(node.args, self.lookup))
        kwargs = self.place_args(node.kwargs, substitute(node.kwargs, self.lookup))
        key = f"{node.name}-{self.token}"
        if node.wait_for:
            after = [self.lookup(w) for w in node.wait_for]
            fut = self.client.submit(run_task_after, node.spec, kwargs, after, *args, key=key, pure=False,
                                     resources=_resources(node))
        else:
            fut = self.client.submit(run_task, node.spec, kwargs, *args, key=key, pure=False,
                                     resources=_resources(node))
        self.futs[node.index] = fut
        self.owner[key] = (node.index, -1)
        self.names[key] = node.name
        self.track([fut])

    def submit_map(self, node: Node, columns: list[list[Any] | None], broadcast: list[Any]) -> None:
        lengths = {len(c) for c in columns if c is not None}
        if len(lengths) > 1:
            self.fail(node, map_length_error(node, [len(c) if c is not None else None for c in columns]))
            return
        n = lengths.pop() if lengths else 0
        self.map_start[node.index] = time.time()
        if n == 0:
            self.futs[node.index] = []
            self.emit(node.name, Success(message="0 children", result=[], start=time.time(), end=time.time()))
            return
        if self.submit_laid_out(node, columns, broadcast, n):
            return
        columns = [self.per_item(c) if isinstance(c, LayoutColumn) else c for c in columns]
        kwargs = self.place_args(node.kwargs, substitute(node.kwargs, self.lookup))
        iterables = [c if c is not None else [b] * n for c, b in zip(columns, broadcast)]
        prefix = f"{node.name}-{self.token}"
        keys = [(prefix, i) for i in range(n)]
        if node.wait_for:
            after = [self.lookup(w) for w in node.wait_for]
            futs = self.client.map(run_task_after, [node.spec] * n, [kwargs] * n, [after] * n, *iterables,
                                   key=keys, pure=False)
        else:
            futs = self.client.map(run_task, [node.spec] * n, [kwargs] * n, *iterables, key=keys, pure=False)
        self.futs[node.index] = futs
        for i, key in enumerate(keys):
            self.owner[key] = (node.index, i)
            self.names[key] = f"{node.name}[{i}]"
        self.children[node.index] = [None] * n
        self.child_left[node.index] = n
        self.track(futs)

    # -- completion ------------------------------------------------------------------------------
    def on_length(self, fut: Any, status: str) -> bool:
        """Record a map length (or why there is none); False when the future must be followed again."""
        index = self.len_keys[fut.key]
        if status == "finished":
            self.lengths[index] = fut.result()  # waits for a recomputation if the integer was lost meanwhile
            return True
        if status == "cancelled":
            self.len_failed[index] = ("skip", self.flow._nodes[index].name)
            return True
        exc = fut.exception()
        if exc is None:  # no longer an error: being recomputed
            self.retrack(fut)
            return False
        if isinstance(exc, TaskFailed):
            self.len_failed[index] = ("skip", self.root_of(exc.payload))
        else:
            self.len_failed[index] = ("error", f"{type(exc).__name__}: {exc}")
        return True

    def root_of(self, payload: dict[str, Any]) -> str:
        return self.names.get(payload.get("key"), payload.get("task") or "?")

    def state_of(self, fut: Any, name: str, status: str) -> State | None:
        """The State of a finished task run, from the status read when as_completed handed it over; None
        when it turns out not to be final (its key is being recomputed)."""
        now = time.time()
        if status == "finished":
            return Success(end=now)
        if status == "cancelled":
            return Cancelled(message="cancelled before it finished", end=now)
        exc = fut.exception()
        if exc is None:  # the error was replaced by a recomputation: not an outcome
            return None
        if isinstance(exc, TaskFailed):
            root = self.root_of(exc.payload)
            return failure_state(exc.payload) if root == name else skipped_state(root, at=now)
        text = f"{type(exc).__name__}: {exc}"
        root = self.foreign.setdefault(text, name)
        if root == name and self.explain is not None:
            try:
                extra = self.explain(exc)
            except Exception:  # noqa: BLE001 - an explanation is a bonus
                extra = None
            if extra:
                text = f"{text[:300]} [{extra}]"
        if root != name:
            return skipped_state(root, at=now)
        import traceback as tb

        trace = "".join(tb.format_tb(fut.traceback())) if fut.traceback() is not None else None
        return Failed(message=text[:500], exc_type=type(exc).__name__, exc_message=str(exc), traceback=trace, end=now)

    def on_done(self, fut: Any, status: str) -> None:
        index, child = self.owner[fut.key]
        name = self.names[fut.key]
        state = self.state_of(fut, name, status)
        if state is None:
            self.retrack(fut)
            return
        if child < 0:
            self.emit(name, state)
            return
        self.child_done(index, child, name, state)
        if index in self.probing:
            self.decide_probe(index, fut.key)
            self.submit_ready()

    def child_done(self, index: int, child: int, name: str, state: State) -> None:
        self.emit(name, state)
        self.children[index][child] = state
        self.child_left[index] -= 1
        if self.child_left[index] == 0:
            node = self.flow._nodes[index]
            kids = [(f"{node.name}[{i}]", s) for i, s in enumerate(self.children[index])]
            self.emit(node.name, map_parent_state(node.name, kids, start=self.map_start[index], end=time.time()))

    def cancel_rest(self) -> None:
        pending = [f for f in self.all_futures() if not f.done()]
        if pending:
            with contextlib.suppress(Exception):
                self.client.cancel(pending)
        now = time.time()
        for node in self.flow.nodes:
            if node.is_parameter:
                continue
            if node.mapped and node.index in self.children:
                for i, s in enumerate(self.children[node.index]):
                    if s is None:
                        self.states[f"{node.name}[{i}]"] = Cancelled(message="run interrupted", end=now)
            if node.name not in self.states:
                self.states[node.name] = Cancelled(message="run interrupted before this task finished", end=now)

    def all_futures(self) -> list[Any]:
        out: list[Any] = self.layout_futures()
        for f in self.futs.values():
            out.extend(f if isinstance(f, list) else [f])
        return out

    def fetch_timings(self, out: list[Any]) -> None:
        """The workers' compute start/stop of the successful runs (best effort: workers may be gone)."""
        keys = [k for k, name in self.names.items() if self.states.get(name, Failed()).is_successful()]
        if keys:
            with contextlib.suppress(Exception):
                out.append(self.client.run(compute_times, keys, on_error="return"))

    def add_timings(self, fetched: list[Any]) -> None:
        """Replace client-observed end times of successful runs by the workers' compute start/stop."""
        for times in (fetched[0] if fetched else {}).values():
            if not isinstance(times, dict):
                continue
            for key, (start, stop) in times.items():
                name = self.names.get(key)
                if name is not None:
                    self.states[name] = dataclasses.replace(self.states[name], start=start, end=stop)

    def gather_results(self) -> dict[str, Any]:
        fetched: list[Any] = []
        timings = threading.Thread(target=self.fetch_timings, args=(fetched,), name="dok-timings", daemon=True)
        timings.start()  # overlaps with the gather below: one round trip's latency instead of two
        nodes = self.flow.nodes if self.fetch_all else self.flow.reference_nodes()
        wanted = [n for n in nodes if not n.is_parameter and self.states.get(n.name, Failed()).is_successful()]
        try:
            values = self.client.gather([self.futs[n.index] for n in wanted]) if wanted else []
        finally:
            timings.join()
        self.add_timings(fetched)
        results: dict[str, Any] = {}
        refs = {n.index for n in self.flow.reference_nodes()}
        for node, value in zip(wanted, values):
            self.states[node.name] = dataclasses.replace(self.states[node.name], result=value)
            if node.mapped:
                for i, v in enumerate(value):
                    child = f"{node.name}[{i}]"
                    self.states[child] = dataclasses.replace(self.states[child], result=v)
            if node.index in refs:
                results[node.name] = value
        return results


def _resources(node: Node) -> dict[str, float] | None:
    """The Dask worker resources a task node asks for (`@task(resources=...)`), None for none."""
    return getattr(node.task, "resources", None) or None
