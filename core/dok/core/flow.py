"""The flow model: tasks, parameters, and the graph built by calling tasks inside `with Flow(...)`.

    @task(max_retries=2, retry_delay=1.0, timeout=30)
    def square(x, sleep=0.0): ...

    @task
    def total(xs): return sum(xs)

    with Flow("fanout") as flow:
        n = Parameter("n", default=50)
        xs = numbers(n)                  # a reference to the future result of `numbers`
        squares = square.map(xs, sleep=0.1)
        total(squares)

    state = flow.run(parameters={"n": 10})

Calling a task inside the block does not run it: it adds a node to the flow and returns a `Ref`. Refs
(anywhere inside list/tuple/dict arguments, too) become data dependencies; `wait_for=[ref, ...]` adds
state-only dependencies. `task.map(*mapped, **broadcast)` fans out: every positional argument is
iterated (a literal iterable, a Parameter, a task's result, or another map, child by child) and zipped;
keyword arguments and positional arguments wrapped in `unmapped(...)` go unchanged to every child.
Passing a mapped Ref to a normal task hands it the list of all children's results (a reduce);
`ref[key]` adds a small `getitem` task.

Graph mistakes raise `FlowDefinitionError`/`ParameterError` while the flow is built, naming the task.
Task run names are stable: a task's name, `name-2`, `name-3` for later calls, `name[i]` for map children.
"""

from __future__ import annotations

import datetime as _dt
import functools
import heapq
import inspect
import operator
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from .exceptions import FlowDefinitionError, ParameterError
from .runtime import TaskSpec
from .states import State

__all__ = ["Flow", "Task", "task", "Parameter", "Ref", "unmapped", "Node", "NO_DEFAULT"]


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __reduce__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()

_context = threading.local()


def _flow_stack() -> list["Flow"]:
    stack = getattr(_context, "stack", None)
    if stack is None:
        stack = _context.stack = []
    return stack


def _active_flow(what: str) -> "Flow":
    stack = _flow_stack()
    if not stack:
        raise FlowDefinitionError(
            f"{what} was used outside a `with Flow(...)` block. Calling a task only adds it to the flow "
            f"being built: do it inside `with Flow('my-flow') as flow:` (to run a task's plain function "
            f"directly, call `.fn(...)` on it)."
        )
    return stack[-1]


# -- tasks ----------------------------------------------------------------------------------------
class Task:
    """A plain function wrapped by `@task`; calling it inside a Flow adds a node and returns a `Ref`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        max_retries: int = 0,
        retry_delay: float | _dt.timedelta = 0.0,
        timeout: float | _dt.timedelta | None = None,
        batch_size: int | str | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        if not callable(fn):
            raise FlowDefinitionError(f"@task needs a function, got {fn!r}")
        name = name if name is not None else getattr(fn, "__name__", None) or type(fn).__name__
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "[]\n"):
            raise FlowDefinitionError(
                f"task name {name!r} is not allowed: use a non-empty string without '[', ']' or newlines"
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise FlowDefinitionError(
                f"task {name!r}: max_retries must be an int >= 0, got {max_retries!r}"
            )
        if not (batch_size is None or batch_size == "auto" or
                (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1)):
            raise FlowDefinitionError(
                f"task {name!r}: batch_size must be an int >= 1, 'auto' or None, got {batch_size!r}"
            )
        self.fn = fn
        self.name = name
        self.batch_size = batch_size
        self.resources = _task_resources(resources, name)
        self.max_retries = max_retries
        self.retry_delay = _seconds(retry_delay, name, "retry_delay", allow_zero=True)
        self.timeout = None if timeout is None else _seconds(timeout, name, "timeout", allow_zero=False)
        functools.update_wrapper(self, fn, updated=())
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self._signature = None

    def spec(self, run_name: str) -> TaskSpec:
        return TaskSpec(
            fn=self.fn,
            name=run_name,
            max_retries=self.max_retries,
            retry_delay=self.retry_delay,
            timeout=self.timeout,
        )

    def __call__(self, *args: Any, wait_for: Any = (), **kwargs: Any) -> "Ref":
        flow = _active_flow(f"task {self.name!r}")
        self._check_signature(args, kwargs)
        return flow._add_task(self, args, kwargs, mapped=False, wait_for=wait_for)

    def map(self, *args: Any, wait_for: Any = (), **kwargs: Any) -> "Ref":
        """Fan out: one child run per item of the positional arguments (zipped); see the module doc."""
        flow = _active_flow(f"task {self.name!r} (.map)")
        if not any(not isinstance(a, unmapped) for a in args):
            raise FlowDefinitionError(
                f"{self.name}.map() needs at least one positional argument to map over (an iterable, "
                f"a Parameter or a task result); keyword and unmapped(...) arguments are broadcast"
            )
        self._check_signature(args, kwargs)
        return flow._add_task(self, args, kwargs, mapped=True, wait_for=wait_for)

    def _check_signature(self, args: tuple, kwargs: dict) -> None:
        if self._signature is None:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise FlowDefinitionError(
                f"task {self.name!r} called with arguments that do not fit {self.name}{self._signature}: {exc}"
            ) from None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_signature"] = None  # rebuilt on unpickling; Signature objects may hold unpicklable defaults
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("batch_size", None)
        self.__dict__.setdefault("resources", None)
        try:
            self._signature = inspect.signature(self.fn)
        except (TypeError, ValueError):
            self._signature = None

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


def task(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    max_retries: int = 0,
    retry_delay: float | _dt.timedelta = 0.0,
    timeout: float | _dt.timedelta | None = None,
    batch_size: int | str | None = None,
    resources: Mapping[str, float] | None = None,
) -> Any:
    """Decorator: `@task` or `@task(name=..., max_retries=..., retry_delay=..., timeout=..., batch_size=...)`.

    retry_delay and timeout are seconds (or `datetime.timedelta`); timeout applies to each attempt.
    batch_size (maps only): run the map's children N at a time per Dask task ("auto": sized from the map
    and the cluster), for tiny tasks; every child keeps its own State, retries, timeout and result.
    resources: Dask worker resources each run needs, e.g. {"GPU": 1}: it runs only on workers that have
    them (a worker pod with nvidia.com/gpu=N has GPU=N; dok.core.resources)."""
    options = dict(name=name, max_retries=max_retries, retry_delay=retry_delay, timeout=timeout,
                   batch_size=batch_size, resources=resources)
    if fn is None:
        return lambda f: Task(f, **options)
    return Task(fn, **options)


def _task_resources(value: Any, task_name: str) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value or not all(
            isinstance(k, str) and k and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in value.items()):
        raise FlowDefinitionError(
            f"task {task_name!r}: resources must map resource names to positive numbers, e.g. {{'GPU': 1}}, "
            f"got {value!r}"
        )
    return {k: float(v) for k, v in value.items()}


def task_resources(flow: Any) -> dict[str, dict[str, float]]:
    """Task name -> the Dask resources it asks for, for the tasks of `flow` that ask for any."""
    return {n.task.name: dict(n.task.resources) for n in flow.nodes
            if n.task is not None and getattr(n.task, "resources", None)}


def _seconds(value: Any, task_name: str, option: str, *, allow_zero: bool) -> float:
    if isinstance(value, _dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise FlowDefinitionError(
            f"task {task_name!r}: {option} must be seconds (a number or datetime.timedelta), got {value!r}"
        )
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise FlowDefinitionError(f"task {task_name!r}: {option} must be {bound} seconds, got {value!r}")
    return float(value)


class unmapped:  # noqa: N801 - reads like a function at the call site
    """Wrap a positional argument of `task.map(...)` to pass it unchanged to every child."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


# -- references ------------------------------------------------------------------------------------
class Ref:
    """A reference to a node's future result, returned by calling a task inside a Flow."""

    __slots__ = ("flow", "index")

    def __init__(self, flow: "Flow", index: int) -> None:
        self.flow = flow
        self.index = index

    @property
    def node(self) -> "Node":
        return self.flow._nodes[self.index]

    @property
    def name(self) -> str:
        """The task run name (`add`, `add-2`, ...); map children are `name[i]`."""
        return self.node.name

    @property
    def mapped(self) -> bool:
        return self.node.mapped

    def set_upstream(self, other: "Ref") -> None:
        """Run this task only after `other` succeeded (a state-only dependency)."""
        self.flow._add_edge(other, self)

    def set_downstream(self, other: "Ref") -> None:
        self.flow._add_edge(self, other)

    def __getitem__(self, key: Any) -> "Ref":
        """`ref[key]` inside the flow: a small `getitem` task on the result (a list index, a dict key)."""
        return self.flow._add_task(_GETITEM, (self, key), {}, mapped=False, wait_for=())

    def __bool__(self) -> bool:
        raise FlowDefinitionError(
            f"the result of task {self.name!r} was used as a condition while building the flow; it has no "
            f"value yet. Put the `if` inside a task that takes the result as an argument."
        )

    def __iter__(self) -> Iterator[Any]:
        raise FlowDefinitionError(
            f"cannot iterate over the result of task {self.name!r} while building the flow; it has no value "
            f"yet. Fan out with some_task.map({self.name}_result) instead."
        )

    def __repr__(self) -> str:
        return f"<Ref {self.name!r} of flow {self.flow.name!r}>"


class Parameter(Ref):
    """A named flow input: `Parameter("n", default=50)` inside `with Flow(...)`. Without a default the
    parameter is required: `flow.run(parameters={"n": ...})` must give it."""

    __slots__ = ()

    def __init__(self, name: str, *, default: Any = NO_DEFAULT) -> None:
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "[]\n"):
            raise ParameterError(
                f"parameter name {name!r} is not allowed: use a non-empty string without '[', ']' or newlines"
            )
        flow = _active_flow(f"Parameter({name!r})")
        super().__init__(flow, flow._add_parameter(name, default))

    @property
    def default(self) -> Any:
        return self.node.default

    @property
    def required(self) -> bool:
        return self.node.default is NO_DEFAULT


_GETITEM = Task(operator.getitem, name="getitem")


# -- the graph --------------------------------------------------------------------------------------
@dataclass(eq=False)
class Node:
    """One node of a flow: a task call, a map, or a parameter. `args`/`kwargs` are templates in which
    Refs stand for upstream results (mapped positional args: a list literal, a Ref, or `unmapped`)."""

    index: int
    name: str
    task: Task | None = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    mapped: bool = False
    upstream: tuple[int, ...] = ()  # data dependencies, in argument order
    wait_for: list[int] = field(default_factory=list)  # state-only dependencies
    default: Any = NO_DEFAULT  # parameters only
    spec: TaskSpec | None = None

    @property
    def is_parameter(self) -> bool:
        return self.task is None

    @property
    def all_upstream(self) -> list[int]:
        return list(dict.fromkeys([*self.upstream, *self.wait_for]))


def walk_refs(obj: Any, found: list[Ref], depth: int = 0) -> None:
    """Collect every Ref inside obj (through list/tuple/set/frozenset/dict/unmapped; not subclasses such
    as namedtuples, whose Refs would not be replaced by values)."""
    t = type(obj)
    if t in (int, float, str, bool, bytes, type(None), range):
        return
    if isinstance(obj, Ref):
        found.append(obj)
    elif t is unmapped:
        walk_refs(obj.value, found, depth + 1)
    elif t in (list, tuple, set, frozenset):  # exact types: the same ones `substitute` rebuilds
        for item in obj:
            walk_refs(item, found, depth + 1)
    elif t is dict:
        for item in obj.values():
            walk_refs(item, found, depth + 1)


def substitute(obj: Any, lookup: Callable[[int], Any]) -> Any:
    """Replace every Ref inside obj by lookup(node index); containers are rebuilt, other values kept."""
    t = type(obj)
    if t in (int, float, str, bool, bytes, type(None), range):
        return obj
    if isinstance(obj, Ref):
        return lookup(obj.index)
    if t is list:
        return [substitute(x, lookup) for x in obj]
    if t is tuple:
        return tuple(substitute(x, lookup) for x in obj)
    if t is dict:
        return {k: substitute(v, lookup) for k, v in obj.items()}
    if t in (set, frozenset):
        return t(substitute(x, lookup) for x in obj)
    return obj


class Flow:
    """A named graph of task runs. Build it with `with Flow("name") as flow:`; run it with `flow.run()`."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise FlowDefinitionError(f"a flow needs a non-empty name, got {name!r}")
        self.name = name
        self._nodes: list[Node] = []
        self._names: set[str] = set()
        self._parameters: dict[str, int] = {}
        self._order: list[int] | None = None

    # -- building --------------------------------------------------------------------------------
    def __enter__(self) -> "Flow":
        _flow_stack().append(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        stack = _flow_stack()
        if stack and stack[-1] is self:
            stack.pop()
        if exc_type is None:
            self.validate()

    def _unique_name(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            i += 1
            name = f"{base}-{i}"
        self._names.add(name)
        return name

    def _own(self, refs: list[Ref], user: str) -> list[int]:
        for ref in refs:
            if ref.flow is not self:
                raise FlowDefinitionError(
                    f"task {user!r} in flow {self.name!r} uses the result of {ref.name!r} from another flow "
                    f"({ref.flow.name!r}); a flow can only use results of its own tasks and parameters"
                )
        return [r.index for r in refs]

    def _add_parameter(self, name: str, default: Any) -> int:
        if name in self._parameters:
            raise ParameterError(
                f"flow {self.name!r} already has a parameter named {name!r}; parameter names must be "
                f"unique, create it once and pass the same Parameter to every task that needs it"
            )
        if name in self._names:
            raise ParameterError(
                f"parameter {name!r} clashes with the task run {name!r} in flow {self.name!r}; rename one"
            )
        self._names.add(name)
        index = len(self._nodes)
        self._nodes.append(Node(index=index, name=name, default=default))
        self._parameters[name] = index
        self._order = None
        return index

    def _add_task(self, t: Task, args: tuple, kwargs: dict, *, mapped: bool, wait_for: Any) -> Ref:
        name = self._unique_name(t.name)
        found: list[Ref] = []
        walk_refs(args, found)
        walk_refs(kwargs, found)
        upstream = tuple(dict.fromkeys(self._own(found, name)))
        if isinstance(wait_for, Ref):
            wait_for = [wait_for]
        try:
            wait_refs = list(wait_for)
        except TypeError:
            raise FlowDefinitionError(f"task {name!r}: wait_for must be a Ref or a list of Refs") from None
        if not all(isinstance(r, Ref) for r in wait_refs):
            raise FlowDefinitionError(
                f"task {name!r}: wait_for takes results of tasks in this flow, got {wait_refs!r}"
            )
        waits = [i for i in self._own(wait_refs, name) if i not in upstream]
        if mapped:
            kwargs = {k: v.value if isinstance(v, unmapped) else v for k, v in kwargs.items()}  # always broadcast
            args = tuple(self._map_source(a, name, pos) for pos, a in enumerate(args))
            self._check_literal_lengths(args, name)
        index = len(self._nodes)
        node = Node(index=index, name=name, task=t, args=args, kwargs=dict(kwargs), mapped=mapped,
                    upstream=upstream, wait_for=list(dict.fromkeys(waits)))
        node.spec = t.spec(name)
        self._nodes.append(node)
        self._order = None
        return Ref(self, index)

    def _map_source(self, arg: Any, name: str, pos: int) -> Any:
        if isinstance(arg, (Ref, unmapped)):
            return arg
        if isinstance(arg, (str, bytes, dict)):
            raise FlowDefinitionError(
                f"task {name!r}: positional argument {pos} of .map() is a {type(arg).__name__}; mapping over "
                f"it is almost certainly a mistake. Pass a list, or wrap it in unmapped(...) to broadcast it"
            )
        try:
            return list(arg)
        except TypeError:
            raise FlowDefinitionError(
                f"task {name!r}: positional argument {pos} of .map() is {arg!r}, which is not iterable. "
                f"Map over a list/range, a Parameter or a task result; wrap constants in unmapped(...) or "
                f"pass them as keyword arguments"
            ) from None

    @staticmethod
    def _check_literal_lengths(args: tuple, name: str) -> None:
        lengths = {len(a) for a in args if isinstance(a, list)}
        if len(lengths) > 1:
            raise FlowDefinitionError(
                f"task {name!r}: .map() got literal iterables of different lengths {sorted(lengths)}; "
                f"mapped arguments are zipped and must have the same length"
            )

    def _add_edge(self, upstream: Ref, downstream: Ref) -> None:
        for r in (upstream, downstream):
            if not isinstance(r, Ref) or r.flow is not self:
                raise FlowDefinitionError(f"{r!r} is not a task of flow {self.name!r}")
        if downstream.node.is_parameter:
            raise FlowDefinitionError(f"parameter {downstream.name!r} cannot wait for other tasks")
        u, d = upstream.index, downstream.index
        path = self._path(d, u)
        if path is not None:
            cycle = " -> ".join(self._nodes[i].name for i in [u, *path])
            raise FlowDefinitionError(
                f"making {downstream.name!r} wait for {upstream.name!r} would create a cycle: {cycle}; "
                f"remove one of these dependencies"
            )
        node = downstream.node
        if u not in node.upstream and u not in node.wait_for:
            node.wait_for.append(u)
        self._order = None

    def _path(self, start: int, goal: int) -> list[int] | None:
        """A dependency path start -> ... -> goal following downstream edges, or None."""
        down = self._downstream()
        parent: dict[int, int] = {start: -1}
        todo = [start]
        while todo:
            i = todo.pop()
            if i == goal:
                path = [i]
                while parent[path[-1]] != -1:
                    path.append(parent[path[-1]])
                return path[::-1]
            for j in down[i]:
                if j not in parent:
                    parent[j] = i
                    todo.append(j)
        return None

    def _downstream(self) -> list[list[int]]:
        down: list[list[int]] = [[] for _ in self._nodes]
        for n in self._nodes:
            for u in n.all_upstream:
                down[u].append(n.index)
        return down

    # -- inspecting ------------------------------------------------------------------------------
    def validate(self) -> list[int]:
        """Check the graph (no cycles) and return the node indices in a topological order."""
        if self._order is not None:
            return self._order
        indeg = {n.index: len(n.all_upstream) for n in self._nodes}
        down = self._downstream()
        ready = [i for i, d in indeg.items() if d == 0]  # a heap: creation order where possible
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in down[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) != len(self._nodes):
            stuck = [self._nodes[i].name for i, d in indeg.items() if d > 0]
            raise FlowDefinitionError(
                f"flow {self.name!r} has a dependency cycle among {', '.join(stuck)}; remove one dependency"
            )
        self._order = order
        return order

    @property
    def nodes(self) -> list[Node]:
        """All nodes in a topological order (parameters included)."""
        return [self._nodes[i] for i in self.validate()]

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameter names and defaults (`NO_DEFAULT` for required ones)."""
        return {name: self._nodes[i].default for name, i in self._parameters.items()}

    @property
    def task_names(self) -> list[str]:
        return [n.name for n in self.nodes if not n.is_parameter]

    def initial_width(self, values: Mapping[str, Any] | None = None) -> int:
        """How many task runs are ready the moment the flow starts: every task whose inputs are only
        parameters and constants counts 1, a map over literal lists or parameter values counts its length
        (0 when it is empty). `values` are parameter values (defaults fill the others). Sizes the first
        workers a run asks for, before anything has been measured."""
        values = {**self.parameters, **(values or {})}
        params = {i: name for name, i in self._parameters.items()}
        width = 0
        for node in self._nodes:
            if node.is_parameter or any(u not in params for u in node.all_upstream):
                continue
            if not node.mapped:
                width += 1
                continue
            lengths = []
            for arg in node.args:
                if isinstance(arg, list):
                    lengths.append(len(arg))
                elif isinstance(arg, Ref) and arg.index in params:
                    try:
                        lengths.append(len(values.get(params[arg.index])))
                    except TypeError:
                        continue
            width += min(lengths) if lengths else 1
        return width

    def reference_nodes(self) -> list[Node]:
        """The terminal task nodes (no task depends on them): their results are the flow's result."""
        has_down = {u for n in self._nodes for u in n.all_upstream}
        return [n for n in self.nodes if not n.is_parameter and n.index not in has_down]

    def resolve_parameters(self, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overridden by `parameters`; ParameterError for unknown names or missing values."""
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, Mapping):
            raise ParameterError(
                f"parameters must be a dict of name -> value, got {type(parameters).__name__}"
            )
        known = self.parameters
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            have = ", ".join(sorted(known)) if known else "none"
            raise ParameterError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for flow {self.name!r}; "
                f"its parameters are: {have}"
            )
        values = {**known, **parameters}
        missing = sorted(k for k, v in values.items() if v is NO_DEFAULT)
        if missing:
            raise ParameterError(
                f"flow {self.name!r} needs a value for parameter(s) {', '.join(map(repr, missing))} "
                f"(no default): pass parameters={{{missing[0]!r}: ...}}"
            )
        return values

    # -- running ---------------------------------------------------------------------------------
    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        executor: Any = None,
        on_task_state: Callable[[str, State], None] | None = None,
    ) -> State:
        """Run the flow and return its State (see `dok.core.states`). Without an executor the flow runs
        in-process on a `LocalExecutor`; `on_task_state(name, state)` is called as task runs finish."""
        values = self.resolve_parameters(parameters)
        self.validate()
        if executor is None:
            from .local_executor import LocalExecutor

            executor = LocalExecutor()
        return executor.execute(self, values, on_task_state=on_task_state)

    def __repr__(self) -> str:
        tasks = sum(1 for n in self._nodes if not n.is_parameter)
        return f"<Flow {self.name!r}: {tasks} task(s), {len(self._parameters)} parameter(s)>"
