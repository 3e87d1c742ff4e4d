"""`LocalExecutor`: runs a flow synchronously in the calling thread, one task run at a time.

Meant for debugging (breakpoints and prints work, tracebacks point at your code) and for tests. It uses
the same task-run wrapper as the Dask executor (`dok.core.runtime.run_task`), so retries, timeouts,
skip propagation, map semantics and the resulting States are the same. Every task run's result is kept,
so every `Success` State carries its `.result`.

Ctrl-C (KeyboardInterrupt) stops the run: unfinished task runs become `Cancelled`, and so does the flow.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from .flow import Flow, Node, Ref, substitute, unmapped
from .runtime import TaskFailed, run_task
from .states import (
    Cancelled,
    Failed,
    Running,
    State,
    Success,
    failure_state,
    flow_state,
    map_parent_state,
    skipped_state,
)

__all__ = ["LocalExecutor"]

logger = logging.getLogger("dok.core")

OnTaskState = Callable[[str, State], None]


class _Bad:
    """Stands in for the value of a task run that did not succeed; `root` is the run name to blame."""

    __slots__ = ("root",)

    def __init__(self, root: str) -> None:
        self.root = root


class LocalExecutor:
    """Run every task in-process, in a topological order."""

    def __repr__(self) -> str:
        return "LocalExecutor()"

    def execute(self, flow: Flow, parameters: dict[str, Any], *, on_task_state: OnTaskState | None = None) -> State:
        run = _LocalRun(flow, parameters, on_task_state)
        return run.run()


class _LocalRun:
    def __init__(self, flow: Flow, parameters: dict[str, Any], on_task_state: OnTaskState | None) -> None:
        self.flow = flow
        self.parameters = parameters
        self.callback = on_task_state
        self.values: dict[int, Any] = {}  # node index -> value, list of child values, or _Bad
        self.states: dict[str, State] = {}

    def emit(self, name: str, state: State) -> None:
        if state.is_finished():
            self.states[name] = state
        if self.callback is not None:
            call_back(self.callback, name, state)

    def run(self) -> State:
        start = time.time()
        interrupted = None
        nodes = self.flow.nodes
        try:
            for node in nodes:
                if node.is_parameter:
                    self.values[node.index] = self.parameters[node.name]
                elif node.mapped:
                    self.run_map(node)
                else:
                    self.run_single(node)
        except KeyboardInterrupt:
            interrupted = "KeyboardInterrupt"
            now = time.time()
            for node in nodes:
                if not node.is_parameter and node.name not in self.states:
                    self.states[node.name] = Cancelled(message="run interrupted before this task finished",
                                                       start=now, end=now)
        results = {
            n.name: self.values[n.index]
            for n in self.flow.reference_nodes()
            if n.index in self.values and self.states.get(n.name, Cancelled()).is_successful()
        }
        return flow_state(self.states, results=results, start=start, end=time.time(), interrupted=interrupted)

    # -- helpers ---------------------------------------------------------------------------------
    def blame(self, node: Node) -> str | None:
        """The run name to blame when an upstream (data or wait_for) did not succeed, else None."""
        for u in node.all_upstream:
            v = self.values.get(u)
            if isinstance(v, _Bad):
                return v.root
            if self.flow._nodes[u].mapped and isinstance(v, list) and u in node.wait_for:
                bad = next((x for x in v if isinstance(x, _Bad)), None)
                if bad is not None:
                    return bad.root
        return None

    def lookup(self, index: int) -> Any:
        v = self.values[index]
        if isinstance(v, list) and self.flow._nodes[index].mapped:
            bad = next((x for x in v if isinstance(x, _Bad)), None)
            if bad is not None:  # a reduce over a map with a failed child
                raise _UpstreamBad(bad.root)
        return v

    def call(self, node: Node, name: str, args: tuple, kwargs: dict) -> tuple[State, Any]:
        self.emit(name, Running(start=time.time()))
        start = time.time()
        try:
            value = run_task(node.spec, kwargs, *args)
        except TaskFailed as exc:
            state = failure_state(exc.payload)
            self.emit(name, state)
            return state, _Bad(name)
        state = Success(result=value, start=start, end=time.time())
        self.emit(name, state)
        return state, value

    def run_single(self, node: Node) -> None:
        root = self.blame(node)
        if root is None:
            try:
                args = substitute(node.args, self.lookup)
                kwargs = substitute(node.kwargs, self.lookup)
            except _UpstreamBad as bad:
                root = bad.root
        if root is not None:
            self.emit(node.name, skipped_state(root, at=time.time()))
            self.values[node.index] = _Bad(root)
            return
        _, self.values[node.index] = self.call(node, node.name, args, kwargs)

    def run_map(self, node: Node) -> None:
        start = time.time()
        root = self.blame(node)
        columns: list[list[Any] | None] = []
        broadcast: list[Any] = []
        kwargs: dict = {}
        error = None
        if root is None:
            try:
                kwargs = substitute(node.kwargs, self.lookup)
                for src in node.args:
                    if isinstance(src, unmapped):
                        columns.append(None)
                        broadcast.append(substitute(src.value, self.lookup))
                    else:
                        columns.append(self.map_column(src))
                        broadcast.append(None)
            except _UpstreamBad as bad:
                root = bad.root
            except _MapError as exc:
                error = str(exc)
        if root is not None:
            self.emit(node.name, skipped_state(root, at=time.time()))
            self.values[node.index] = _Bad(root)
            return
        lengths = {len(c) for c in columns if c is not None}
        if error is None and len(lengths) > 1:
            error = map_length_error(node, [len(c) if c is not None else None for c in columns])
        if error is not None:
            now = time.time()
            self.emit(node.name, Failed(message=error, exc_type="MapError", exc_message=error, start=now, end=now))
            self.values[node.index] = _Bad(node.name)
            return
        n = lengths.pop() if lengths else 0
        children: list[tuple[str, State]] = []
        values: list[Any] = []
        for i in range(n):
            child = f"{node.name}[{i}]"
            args = tuple(col[i] if col is not None else b for col, b in zip(columns, broadcast))
            bad = next((a for a in args if isinstance(a, _Bad)), None)
            if bad is not None:
                state: State = skipped_state(bad.root, at=time.time())
                self.emit(child, state)
                value: Any = _Bad(bad.root)
            else:
                state, value = self.call(node, child, args, kwargs)
            children.append((child, state))
            values.append(value)
        self.values[node.index] = values
        parent = map_parent_state(node.name, children, start=start, end=time.time(),
                                  result=[v for v in values if not isinstance(v, _Bad)])
        self.emit(node.name, parent)

    def map_column(self, src: Any) -> list[Any]:
        if isinstance(src, Ref):
            v = self.values[src.index]
            if isinstance(v, _Bad):
                raise _UpstreamBad(v.root)
            if self.flow._nodes[src.index].mapped:
                return list(v)  # child by child; failed children stay _Bad and skip their child
            try:
                return list(v)
            except TypeError:
                raise _MapError(
                    f"cannot map over the result of {src.name!r}: {type(v).__name__} is not iterable"
                ) from None
        return [substitute(item, self.lookup) for item in src]


def call_back(callback: OnTaskState, name: str, state: State) -> None:
    """Call the progress callback; its errors are logged, not allowed to break the run (KeyboardInterrupt
    still interrupts it)."""
    try:
        callback(name, state)
    except Exception:
        logger.exception("on_task_state(%r, %s) raised; ignored", name, type(state).__name__)


class _UpstreamBad(Exception):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.root = root


class _MapError(Exception):
    pass


def map_length_error(node: Node, lengths: list[int | None]) -> str:
    shown = ", ".join(f"argument {i}: {n}" for i, n in enumerate(lengths) if n is not None)
    return (
        f"task {node.name!r}: the mapped arguments have different lengths ({shown}); they are zipped and "
        f"must have the same length (wrap constants in unmapped(...))"
    )
