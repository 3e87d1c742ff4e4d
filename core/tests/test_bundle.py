"""Flow bundles: round trip, integrity and version checks, pickling user modules by value."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dok.core import BundleError, Flow, Parameter, bundle, task


@task
def square(x):
    return x * x


@task
def total(xs):
    return sum(xs)


def make_flow(name="bundled"):
    with Flow(name) as flow:
        n = Parameter("n", default=5)
        offset = Parameter("offset", default=0)

        @task
        def numbers(n, offset):  # a closure-free local function, pickled by value
            return [i + offset for i in range(n)]

        total(square.map(numbers(n, offset)))
    return flow


FLOW = make_flow()
DATA, INFO = bundle.dumps(FLOW)


def test_dumps_records_versions_and_hash():
    versions = bundle.current_versions()
    assert INFO.python == versions["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (INFO.dask, INFO.distributed, INFO.cloudpickle) == (
        versions["dask"], versions["distributed"], versions["cloudpickle"])
    assert INFO.flow_name == "bundled"
    payload = DATA[DATA.index(b"\n", len(bundle.MAGIC)) + 1:]
    assert INFO.sha256 == hashlib.sha256(payload).hexdigest() and INFO.size == len(payload)


@given(n=st.integers(0, 30), offset=st.integers(-50, 50))
@settings(max_examples=30, deadline=None)
def test_round_trip_preserves_behaviour(n, offset):
    loaded = bundle.loads(DATA)
    params = {"n": n, "offset": offset}
    before, after = FLOW.run(parameters=params), loaded.run(parameters=params)
    assert after.is_successful()
    assert after.result == before.result == {"total": sum((i + offset) ** 2 for i in range(n))}
    assert list(after.task_states) == list(before.task_states)
    assert loaded.parameters == FLOW.parameters


def test_dump_and_load_a_file(tmp_path):
    path = tmp_path / "flow.dokflow"
    info = bundle.dump(FLOW, path)
    assert info.flow_name == "bundled" and info.size == os.path.getsize(path) - path.read_bytes().index(b"\n", 8) - 1
    assert bundle.read_info(path).sha256 == info.sha256
    flow = bundle.load(path, expected_sha256=info.sha256)
    assert flow.run().result == {"total": 30}
    assert not list(tmp_path.glob("*.tmp-*"))


@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_any_flipped_byte_is_refused(data):
    pos = data.draw(st.integers(0, len(DATA) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    corrupted = bytearray(DATA)
    corrupted[pos] ^= flip
    with pytest.raises(BundleError):
        bundle.loads(bytes(corrupted))


@given(cut=st.integers(0, len(DATA) - 1))
@settings(max_examples=50, deadline=None)
def test_truncated_bundle_is_refused(cut):
    with pytest.raises(BundleError):
        bundle.loads(DATA[:cut])


def test_messages_say_what_is_wrong(tmp_path):
    with pytest.raises(BundleError, match="not a dok flow bundle"):
        bundle.loads(b"PK\x03\x04 a zip file")
    with pytest.raises(BundleError, match="sha256 is .* the header says"):
        bundle.loads(DATA[:-1] + bytes([DATA[-1] ^ 1]))
    with pytest.raises(BundleError, match=r"expected 0{64}.*not the bundle that was built"):
        bundle.loads(DATA, expected_sha256="0" * 64)
    with pytest.raises(BundleError, match="cannot read the flow bundle"):
        bundle.load(tmp_path / "missing.dokflow")
    with pytest.raises(BundleError, match="takes a dok Flow"):
        bundle.dumps(lambda: 1)


def test_version_mismatch_names_the_package_and_the_fix(monkeypatch):
    real = bundle.current_versions()
    monkeypatch.setattr(bundle, "current_versions", lambda: {**real, "distributed": "2026.7.1", "python": "3.99"})
    with pytest.raises(BundleError) as err:
        bundle.loads(DATA)
    msg = str(err.value)
    assert (f"bundle was written with distributed {real['distributed']}, this interpreter has 2026.7.1: "
            f"install distributed=={real['distributed']}") in msg
    assert f"bundle was written with Python {real['python']}, this interpreter is Python 3.99" in msg
    assert "install dask==" not in msg and "install cloudpickle==" not in msg  # only what differs
    assert bundle.loads(DATA, check_versions=False).name == "bundled"


def test_header_is_canonical_json():
    header = DATA[len(bundle.MAGIC): DATA.index(b"\n", len(bundle.MAGIC))]
    doc = json.loads(header)
    assert doc["sha256"] == INFO.sha256 and doc["flow"] == "bundled" and doc["format"] == 1


def test_unpicklable_flow_is_refused_with_a_hint():
    import threading

    lock = threading.Lock()

    @task
    def uses_lock(x):
        with lock:
            return x

    with Flow("bad") as flow:
        uses_lock(1)
    with pytest.raises(BundleError, match="cannot pickle flow 'bad'.*picklable"):
        bundle.dumps(flow)


def test_user_module_is_pickled_by_value(tmp_path):
    """A flow defined in a module that the loading interpreter cannot import still loads and runs."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "userhelpers.py").write_text("def triple(x):\n    return 3 * x\n")
    (src / "userflow.py").write_text(textwrap.dedent("""
        from dok.core import Flow, task
        import userhelpers

        @task
        def tripled(x):
            return userhelpers.triple(x)

        @task
        def total(xs):
            return sum(xs)

        with Flow("userflow") as flow:
            total(tripled.map([1, 2, 3]))
    """))
    sys.path.insert(0, str(src))
    try:
        import userflow  # noqa: F401 - an importable module here, not in the "image"

        path = tmp_path / "flow.dokflow"
        info = bundle.dump(sys.modules["userflow"].flow, path)
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("userflow", None)
        sys.modules.pop("userhelpers", None)
    assert not any(m.__name__ == "userflow" for m in bundle.local_modules())
    code = (
        "import sys; from dok.core import bundle\n"
        f"flow = bundle.load({str(path)!r}, expected_sha256={info.sha256!r})\n"
        "assert 'userflow' not in sys.modules and 'userhelpers' not in sys.modules\n"
        "print(flow.run().result['total'])\n"
        "from dok.core import DaskExecutor\n"
        "executor = DaskExecutor(cluster_kwargs={'processes': False, 'n_workers': 1, 'silence_logs': 50})\n"
        "print(flow.run(executor=executor).result['total'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p) and p != str(src))}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["18", "18"]


def test_versions_come_from_metadata_and_match_the_modules():
    import importlib.metadata

    import dask
    import distributed

    versions = bundle.current_versions()
    assert versions["dask"] == dask.__version__ == importlib.metadata.version("dask")
    assert versions["distributed"] == distributed.__version__
    assert versions["cloudpickle"] == importlib.metadata.version("cloudpickle")
