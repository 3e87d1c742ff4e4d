"""Flow files loaded the way `dok build`/`dok run` load them give byte-identical bundles in fresh
processes, whatever the hash seed, and wherever the file sits (same content, other directory): the
content-hash image tag only changes when the flow does."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from dok.core import bundle
from dok.launcher.flowfile import load_flow, module_name

HERE = Path(__file__).parent
DATA = HERE / "data"
EXAMPLES = HERE.parent.parent / "examples"  # //examples, in the source tree and in Bazel runfiles

CHILD = textwrap.dedent('''
    import hashlib, sys
    from dok.core import bundle
    from dok.launcher.flowfile import load_flow
    for ref in sys.argv[1:]:
        data, _ = bundle.dumps(load_flow(ref).flow)
        print(hashlib.sha256(data).hexdigest())
''')


def _digests(refs: list[str], seeds: list[str]) -> list[list[str]]:
    """For each hash seed, a fresh interpreter's bundle sha256 of every ref (the processes run in parallel)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, *refs], env={**env, "PYTHONHASHSEED": seed},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in seeds]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out.append(stdout.split())
    return out


def _copy_flow(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in ("determinism_flow.py", "determinism_helpers.py"):
        shutil.copy(DATA / name, directory / name)
    return directory / "determinism_flow.py"


def test_flow_files_bundle_identically_across_processes_seeds_and_locations(tmp_path):
    # the example flows that load on their own (wordcount.py imports its py_library, //examples/lib)
    examples = sorted(str(p) for p in EXAMPLES.glob("*.py") if "import wordlib" not in p.read_text())
    assert examples, f"no example flows in {EXAMPLES}"
    refs = [*examples, str(DATA / "determinism_flow.py"), str(DATA / "ok_flow.py")]
    runs = _digests(refs, ["0", "1", "random"])
    assert all(len(run) == len(refs) for run in runs), runs
    assert runs[0] == runs[1] == runs[2], runs
    assert len(set(runs[0])) == len(refs)  # different flows, different bundles

    elsewhere = _copy_flow(tmp_path / "another-checkout" / "flows")
    assert _digests([str(elsewhere)], ["99"]) == [[runs[0][-2]]]


def test_the_bundle_runs_like_the_flow(tmp_path):
    path = _copy_flow(tmp_path / "src")
    data, _ = bundle.dumps(load_flow(str(path)).flow)
    path.unlink()
    (tmp_path / "src" / "determinism_helpers.py").unlink()  # the bundle must not need the files
    state = bundle.loads(data).run()
    assert state.is_successful(), state
    assert state.result == {"score": {"total": 13, "level": "high", "rule": "colors"}}


def test_module_name_depends_on_content_not_location(tmp_path):
    source = (DATA / "ok_flow.py").read_bytes()
    a = module_name(Path("/one/place/ok_flow.py"), source)
    assert a == module_name(Path("/elsewhere/ok_flow.py"), source)
    assert a != module_name(Path("/one/place/ok_flow.py"), source + b"\n# changed\n")
    assert a.startswith("dok_userflow_ok_flow_") and a.isidentifier()
    assert module_name(Path("/x/my-flow.v2.py"), b"").isidentifier()
    assert load_flow(str(DATA / "ok_flow.py")).module.__name__ == module_name(DATA / "ok_flow.py", source)
    assert hashlib.sha256(source).hexdigest()[:12] in a
