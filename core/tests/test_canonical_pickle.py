"""Canonical pickling: a flow's bundle is byte-identical across processes, hash seeds and checkout
locations, and what loads from it behaves like the original (sets, dicts, closures, classes)."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from dok.core import bundle, canonical_pickle
from dok.core.canonical_pickle import stable_filename

# A flow module with everything whose pickled form used to depend on the process: sets and frozensets of
# strings (module globals, task arguments, parameter defaults, inside dicts), closures, lambdas, nested
# functions, a dataclass and an Enum defined in the module (pickled by value with a class tracker id).
FLOW_SOURCE = textwrap.dedent('''
    from __future__ import annotations

    import dataclasses
    import enum

    import helpermod
    from dok.core import Flow, Parameter, task

    TAGS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"}
    MIXED = frozenset({"x", "y", b"raw", 3, ("t", 1), 2.5})
    TABLE = {"zulu": {"nested", "set", "of", "words"}, "alpha": [1, 2, {"k": frozenset({"v", "w"})}]}


    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"


    @dataclasses.dataclass(frozen=True)
    class Box:
        label: str
        items: frozenset


    def make_scaler(factor):
        def scale(x):
            return x * factor
        return scale


    @task
    def tagged(n, box):
        scale = make_scaler(2)
        pick = lambda s: sorted(s)[:n]
        return {"tags": pick(TAGS | {t.upper() for t in TAGS}), "scaled": [scale(i) for i in range(n)],
                "color": Color.BLUE.value, "box": sorted(box.items), "mixed": len(MIXED),
                "table": sorted(TABLE["zulu"]), "helper": sorted(helpermod.WORDS)}


    @task
    def combine(result, extra, options):
        return {**result, "extra": sorted(extra), "names": sorted(options["names"]), "order": options["order"]}


    with Flow("determinism") as flow:
        n = Parameter("n", default=3)
        box = Parameter("box", default=Box("b", frozenset({"m", "n", "o"})))
        combine(tagged(n, box), {"one", "two", "three"},
                options={"names": frozenset({"p", "q", "r"}), "order": ["z", "a"]})
''')

CHILD = textwrap.dedent('''
    import hashlib, sys
    sys.path.insert(0, sys.argv[1])
    import flowmod
    from dok.core import bundle
    data, info = bundle.dumps(flowmod.flow)
    sys.stdout.write(hashlib.sha256(data).hexdigest())
''')

SEEDS = ("0", "1", "random")


HELPER_SOURCE = 'WORDS = {"sibling", "module", "pickled", "by", "value"}\n'


def _write_module(directory, source=FLOW_SOURCE):
    """flowmod.py (the flow) and helpermod.py (a sibling module it imports: pickled as a module object)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flowmod.py").write_text(source)
    (directory / "helpermod.py").write_text(HELPER_SOURCE)
    return directory


def _child_env(seed: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONHASHSEED"] = seed
    return env


def _digests(jobs: list[tuple[str, str]]) -> list[str]:
    """sha256 of the bundle written by a fresh interpreter per (module directory, hash seed), in parallel."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, directory], env=_child_env(seed),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for directory, seed in jobs]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out.append(stdout.strip())
    return out


def test_same_bytes_in_fresh_processes_with_any_hash_seed_and_location(tmp_path):
    here = _write_module(tmp_path / "checkout-a" / "flows")
    elsewhere = _write_module(tmp_path / "another" / "deeper" / "checkout")
    digests = _digests([(str(here), seed) for seed in SEEDS] + [(str(elsewhere), "7")])
    assert len(digests[0]) == 64
    assert set(digests) == {digests[0]}, digests

    changed = _write_module(tmp_path / "changed", FLOW_SOURCE.replace('"kappa"', '"lambda"'))
    assert _digests([(str(changed), "0")]) != [digests[0]]  # a real change still changes the bundle


def test_the_canonical_bundle_loads_and_runs_like_the_flow(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_write_module(tmp_path / "src")))
    monkeypatch.delitem(sys.modules, "flowmod", raising=False)
    monkeypatch.delitem(sys.modules, "helpermod", raising=False)
    import flowmod

    data, info = bundle.dumps(flowmod.flow)
    assert hashlib.sha256(data).hexdigest() == _digests([(str(tmp_path / "src"), "3")])[0]  # this process, too
    loaded = bundle.loads(data)
    state = loaded.run()
    assert state.is_successful(), state
    result = state.result["combine"]
    assert result["tags"] == ["ALPHA", "BETA", "DELTA"] and result["scaled"] == [0, 2, 4]
    assert result["color"] == "blue" and result["box"] == ["m", "n", "o"] and result["mixed"] == 6
    assert result["extra"] == ["one", "three", "two"] and result["names"] == ["p", "q", "r"]
    assert result["order"] == ["z", "a"] and result["table"] == ["nested", "of", "set", "words"]
    assert result["helper"] == ["by", "module", "pickled", "sibling", "value"]
    assert str(tmp_path).encode() not in data  # nothing from where the files were
    tagged = next(n for n in loaded.nodes if n.name == "tagged")
    assert tagged.task.fn.__code__.co_filename == "flowmod.py"  # no absolute path from this machine
    assert tagged.spec.filename == "flowmod.py"
    assert tagged.task.fn.__globals__["__file__"] == "flowmod.py"


def test_shared_and_self_referencing_sets_keep_their_structure():
    class Holder:
        pass

    shared = {"b", "a", "c"}
    frozen = frozenset({"y", "x"})
    holder = Holder()
    loop = {holder, "tail"}
    holder.back = loop  # the set is reached again through one of its own elements
    value = [shared, shared, frozen, {frozen: shared}, loop]
    out = pickle.loads(canonical_pickle.dumps(value))
    assert out[0] == shared and out[0] is out[1]
    assert out[2] == frozen and out[3] == {frozen: shared} and out[3][out[2]] is out[0]
    inner = next(x for x in out[4] if x != "tail")
    assert inner.back is out[4]


def test_equal_strings_pickle_the_same_whatever_their_identity():
    a = "".join(["dok", "-", "flow"])
    b = "".join(["dok", "-", "flow"])
    assert a is not b
    assert canonical_pickle.dumps([a, b]) == canonical_pickle.dumps([a, a])


def test_dict_order_is_kept():
    out = pickle.loads(canonical_pickle.dumps({"zeta": 1, "alpha": 2, "mu": {"z", "a"}}))
    assert list(out) == ["zeta", "alpha", "mu"]


def _factory(value):
    class Local:
        def get(self):
            return value

    return Local


def test_distinct_local_classes_with_one_name_stay_distinct():
    first, second = _factory(1), _factory(2)
    assert first.__qualname__ == second.__qualname__
    a, b = pickle.loads(canonical_pickle.dumps([first(), second()]))
    assert type(a) is not type(b)
    assert (a.get(), b.get()) == (1, 2)
    assert canonical_pickle.dumps(first()) == canonical_pickle.dumps(first())


def test_module_file_names_lose_the_directory():
    namespace: dict = {"__name__": "some_flow_module", "__file__": "/some/checkout/flows/my_flow.py"}
    source = "def outer(x):\n    inner = lambda y: y + x\n    return inner\n"
    exec(compile(source, namespace["__file__"], "exec"), namespace)
    fn = pickle.loads(canonical_pickle.dumps(namespace["outer"]))
    assert fn.__globals__["__file__"] == "my_flow.py"
    assert namespace["__file__"] == "/some/checkout/flows/my_flow.py"  # the original is left alone
    assert fn(1)(2) == 3
    assert "/some/checkout" not in canonical_pickle.dumps(namespace["outer"]).decode("latin-1")


@pytest.mark.parametrize("filename, module, expected", [
    ("/src/flows/helpers.py", "helpers", "helpers.py"),
    ("/src/pkg/sub.py", "pkg.sub", "pkg/sub.py"),
    ("/src/pkg/__init__.py", "pkg", "pkg/__init__.py"),
    ("/work/examples/fanout.py", "dok_userflow_fanout_0123456789ab", "fanout.py"),
    ("/elsewhere/sub.py", "pkg.sub", "sub.py"),  # the directories do not spell the package
    ("/tmp/x.py", None, "x.py"),
    ("<string>", "m", "<string>"),
    ("already/relative.py", "relative", "already/relative.py"),
])
def test_stable_filename(filename, module, expected):
    assert stable_filename(filename, module) == expected
