"""Canonical pickling: the same flow gives the same bundle bytes in every process, on every machine.

`cloudpickle.dumps(flow)` is correct but not reproducible: its bytes depend on things that are not the
flow. Image tags are content hashes of the bundle, so each of these would defeat "already exists: build
skipped" and make a new image for an unchanged flow:

* set and frozenset order: sets of strings iterate in an order that depends on the per-process hash
  seed (PYTHONHASHSEED). Sets are written with their elements in a canonical order (sorted when they
  are all str, all bytes or all int; otherwise by each element's own canonical pickle). Set order has no
  meaning, so nothing the flow can observe changes.
* where the source file was: a by-value module pickled as a module object carries its `__file__`,
  `__cached__`, `__spec__` and `__loader__` (with its path); a by-value function's globals carry the
  module's `__file__`; dok's TaskSpec keeps the task function's file name (to restore it in tracebacks;
  cloudpickle itself writes `<dynamic-code>` for every code object's `co_filename`). Those are absolute
  paths that differ between checkouts, Bazel sandboxes and runfiles trees, and mean nothing inside the
  image (the files are not there). `__file__` and the TaskSpec's name become the path relative to the
  module's import root (`helpers.py`, `pkg/sub.py`); a flow file imported by path (its module name is not
  its file name) becomes its file name (`fanout.py`). Tracebacks in the image name that. The cached-file
  path, spec and loader are left out (None), as for a module made at run time.
* cloudpickle's tracker id of a class pickled by value (a random uuid4 per class and process) becomes a
  digest of the class's module, qualified name and module file content (plus an index when different
  live classes share these), so unpickling still tells different classes apart.
* string identity: pickle memoizes by object identity, so whether two equal strings are one object or two
  changes the bytes. Strings and bytes are memoized by value.

Dict order is kept: it is insertion order, which programs can observe, and it is already deterministic
when the program is.

How: the standard library's pure-Python `pickle._Pickler` (it offers sets to its own dispatch, which the
C pickler does not let a subclass change) driven by cloudpickle's reducers for functions and classes.
It is slower than `cloudpickle.dumps` (a bundle is written once per build). It uses cloudpickle
internals that are stable across the 3.x line (`Pickler._function_reduce` and friends, the class tracker
tables); `dumps` raises `CanonicalPickleError` naming what is missing if a cloudpickle version lacks them.
The output is ordinary pickle protocol 5: `pickle.loads`/`cloudpickle.loads` read it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import pickle
import sys
import threading
import types
import weakref
from typing import Any, Callable, Iterable, Mapping

import cloudpickle

__all__ = ["CanonicalPickleError", "PROTOCOL", "dumps", "stable_filename"]

PROTOCOL = 5
Reducer = Callable[[Any, Callable[[str], str]], Any]
_BATCH = 1000  # set items per ADDITEMS opcode, as pickle does

_cp: Any = getattr(cloudpickle, "cloudpickle", None)
_REQUIRED_PICKLER_ATTRS = ("reducer_override", "_function_reduce", "_dynamic_function_reduce",
                           "_function_getnewargs", "dispatch_table")
_REQUIRED_MODULE_ATTRS = ("_DYNAMIC_CLASS_TRACKER_BY_CLASS", "_DYNAMIC_CLASS_TRACKER_BY_ID",
                          "_DYNAMIC_CLASS_TRACKER_LOCK", "_should_pickle_by_reference")


class CanonicalPickleError(RuntimeError):
    """This cloudpickle lacks an internal that canonical pickling relies on."""


def _missing_internals() -> list[str]:
    missing = [f"cloudpickle.Pickler.{a}" for a in _REQUIRED_PICKLER_ATTRS if not hasattr(cloudpickle.Pickler, a)]
    missing += [f"cloudpickle.cloudpickle.{a}" for a in _REQUIRED_MODULE_ATTRS if not hasattr(_cp, a)]
    return missing


# -- file names ---------------------------------------------------------------------------------------
def stable_filename(filename: str, module_name: str | None) -> str:
    """`filename` relative to the import root of `module_name` (`/src/pkg/sub.py`, `pkg.sub` → `pkg/sub.py`);
    just the file name when the module's name does not match its path (a flow file imported by path) or
    the module is unknown. Names that are not absolute paths (`<string>`, already relative) are kept."""
    if not filename or not os.path.isabs(filename):
        return filename
    base = os.path.basename(filename)
    if not module_name:
        return base
    parts = module_name.split(".")
    stem = os.path.splitext(base)[0]
    directories = os.path.dirname(filename).split(os.sep)
    if stem == "__init__":
        package = parts
    elif parts[-1] == stem:
        package = parts[:-1]
    else:
        return base
    if package and directories[-len(package):] != package:
        return base  # the directories do not spell the package: do not guess
    return "/".join([*package, base])


class _FileNames:
    """Absolute source paths → stable names, looking modules up by `__file__` once per pickling."""

    def __init__(self) -> None:
        self._by_file: dict[str, str] | None = None
        self._by_real: dict[str, str] | None = None
        self._cache: dict[str, str] = {}

    def _module_of(self, filename: str) -> str | None:
        if self._by_file is None:  # a code or module file name is the __file__ it was imported with, normally
            self._by_file = self._table(lambda path: path)
        found = self._by_file.get(filename)
        if found is None:  # imported through a symlink (Bazel runfiles, a venv)?
            if self._by_real is None:
                self._by_real = self._table(os.path.realpath)
            found = self._by_real.get(os.path.realpath(filename))
        return found

    @staticmethod
    def _table(key: Callable[[str], str]) -> dict[str, str]:
        table: dict[str, str] = {}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str):
                table.setdefault(key(path), name)
        return table

    def stable(self, filename: str) -> str:
        if not filename or not os.path.isabs(filename):
            return filename
        name = self._cache.get(filename)
        if name is None:
            name = self._cache[filename] = stable_filename(filename, self._module_of(filename))
        return name


# -- class tracker ids --------------------------------------------------------------------------------
_PINNED: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
_PIN_LOCK = threading.Lock()


def _module_digest(module_name: str) -> str:
    path = getattr(sys.modules.get(module_name), "__file__", None)
    if not isinstance(path, str):
        return ""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return ""


def _pin_tracker_id(cls: type) -> None:
    """Give `cls` a deterministic cloudpickle tracker id (instead of a random uuid4), before cloudpickle
    asks for one. Another live class already holding the id (the same module, name and source: a class
    made by a factory function, called twice) gets the next index."""
    with _PIN_LOCK, _cp._DYNAMIC_CLASS_TRACKER_LOCK:
        tracker = _PINNED.get(cls)
        if tracker is None:
            module = str(getattr(cls, "__module__", "") or "")
            seed = "\0".join(("dok-class-v1", module, str(getattr(cls, "__qualname__", cls.__name__)),
                              _module_digest(module)))
            for index in itertools.count():
                tracker = hashlib.sha256(f"{seed}\0{index}".encode()).hexdigest()[:32]
                holder = _cp._DYNAMIC_CLASS_TRACKER_BY_ID.get(tracker)
                if holder is None or holder is cls:
                    break
            _PINNED[cls] = tracker
        _cp._DYNAMIC_CLASS_TRACKER_BY_CLASS[cls] = tracker
        _cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker] = cls


# -- the pickler --------------------------------------------------------------------------------------
_SORTABLE = (str, bytes, int)
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, tuple, list, dict, set, frozenset})


class _CanonicalPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """pickle's pure-Python Pickler with cloudpickle's reducers and the canonical forms above."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]
    # cloudpickle's reducers (getattr: a cloudpickle without them fails in dumps() with a clear message)
    dispatch_table = getattr(cloudpickle.Pickler, "dispatch_table", None)
    _function_reduce = getattr(cloudpickle.Pickler, "_function_reduce", None)
    _dynamic_function_reduce = getattr(cloudpickle.Pickler, "_dynamic_function_reduce", None)
    _cloudpickle_function_getnewargs = getattr(cloudpickle.Pickler, "_function_getnewargs", None)
    _cloudpickle_reducer_override = getattr(cloudpickle.Pickler, "reducer_override", None)

    def __init__(self, file: io.BytesIO, *, filenames: _FileNames, reducers: Mapping[type, Reducer]) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._reducers = reducers
        self.globals_ref: dict[int, dict[str, Any]] = {}  # what cloudpickle's function reducers expect
        self.proto = PROTOCOL
        self._filenames = filenames
        self._by_value: dict[Any, Any] = {}

    # strings and bytes: one memo entry per value, whatever their identity (pickle always memoizes them)
    def _save_str_or_bytes(self, obj: str | bytes) -> None:
        first = self._by_value.setdefault(obj, obj)
        if first is not obj:
            self.write(self.get(self.memo[id(first)][0]))
            return
        pickle._Pickler.dispatch[type(obj)](self, obj)  # type: ignore[attr-defined]

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in _PLAIN:
            return NotImplemented
        extra = self._reducers.get(type(obj))
        if extra is not None:
            return extra(obj, self._filenames.stable)
        if type(obj) is types.ModuleType:
            return self._module_reduce(obj)
        if isinstance(obj, type) and _is_dynamic_class(obj):
            _pin_tracker_id(obj)
        return self._cloudpickle_reducer_override(obj)

    def _function_getnewargs(self, func: types.FunctionType) -> tuple[Any, ...]:
        code, base_globals, *rest = self._cloudpickle_function_getnewargs(func)
        _canonical_module_state(base_globals, self._filenames)  # the pickler's own copy of the globals
        return (code, base_globals, *rest)

    def _module_reduce(self, module: types.ModuleType) -> Any:
        rv = self.dispatch_table[types.ModuleType](module)
        args = rv[1]
        if len(args) == 2 and isinstance(args[1], dict):  # by value: (name, a copy of the module's __dict__)
            _canonical_module_state(args[1], self._filenames)
        return rv

    # sets: the elements in canonical order
    def _ordered(self, items: Iterable[Any]) -> list[Any]:
        items = list(items)
        for kind in _SORTABLE:
            if all(type(x) is kind for x in items):
                return sorted(items)
        try:
            keyed = [(type(x).__module__, type(x).__qualname__, self._element_bytes(x), i)
                     for i, x in enumerate(items)]
        except Exception:  # an element that only pickles in context (it refers back to this set): as it is
            return items
        return [items[k[-1]] for k in sorted(keyed)]

    def _element_bytes(self, obj: Any) -> bytes:
        buffer = io.BytesIO()
        _CanonicalPickler(buffer, filenames=self._filenames, reducers=self._reducers).dump(obj)
        return buffer.getvalue()

    def _save_set(self, obj: set[Any]) -> None:
        self.write(pickle.EMPTY_SET)
        self.memoize(obj)
        items = self._ordered(obj)
        for start in range(0, len(items), _BATCH):
            self.write(pickle.MARK)
            for item in items[start:start + _BATCH]:
                self.save(item)
            self.write(pickle.ADDITEMS)

    def _save_frozenset(self, obj: frozenset[Any]) -> None:
        self.write(pickle.MARK)
        for item in self._ordered(obj):
            self.save(item)
        if id(obj) in self.memo:  # reached again through one of its elements: use that copy
            self.write(pickle.POP_MARK + self.get(self.memo[id(obj)][0]))
            return
        self.write(pickle.FROZENSET)
        self.memoize(obj)

    dispatch[set] = _save_set
    dispatch[str] = _save_str_or_bytes
    dispatch[bytes] = _save_str_or_bytes
    dispatch[frozenset] = _save_frozenset


def _canonical_module_state(namespace: dict[str, Any], filenames: _FileNames) -> None:
    """A by-value module's namespace (or a function's copy of its globals) without where it was imported
    from: `__file__` made stable; `__cached__`, `__spec__`, `__loader__` and `__path__` (paths of this
    machine, their loader reading files the image does not have) emptied."""
    path = namespace.get("__file__")
    if isinstance(path, str):
        namespace["__file__"] = filenames.stable(path)
    namespace.pop("__cached__", None)
    for key in ("__spec__", "__loader__"):
        if key in namespace:
            namespace[key] = None
    if "__path__" in namespace:
        namespace["__path__"] = []


def _is_dynamic_class(cls: type) -> bool:
    try:
        return not _cp._should_pickle_by_reference(cls)
    except Exception:
        return False


def dumps(obj: Any, *, reducers: Mapping[type, Reducer] | None = None) -> bytes:
    """The canonical protocol-5 pickle of `obj` (cloudpickle semantics: by-value functions and classes).
    Register modules with `cloudpickle.register_pickle_by_value` first, as for `cloudpickle.dumps`.

    `reducers` maps exact types to `reduce(obj, stable_filename) -> reduce tuple | NotImplemented`, for
    objects that keep a source path of their own (`stable_filename(path)` is the rewrite above)."""
    missing = _missing_internals()
    if missing:
        raise CanonicalPickleError(
            f"cloudpickle {cloudpickle.__version__} lacks {', '.join(missing)}, which dok's canonical pickling "
            f"uses: install the cloudpickle version in requirements.lock")
    buffer = io.BytesIO()
    try:
        _CanonicalPickler(buffer, filenames=_FileNames(), reducers=dict(reducers or {})).dump(obj)
    except RecursionError as exc:
        raise pickle.PicklingError("the object graph is too deeply nested to pickle "
                                   "(a long linked structure?)") from exc
    return buffer.getvalue()
