"""Loading FILE[:ATTR]: path resolution (BUILD_WORKING_DIRECTORY), attribute choice, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dok.launcher.exceptions import UsageError
from dok.launcher.flowfile import load_flow, parse_ref, resolve_path

DATA = Path(__file__).resolve().parent / "data"


def test_parse_ref_plain_and_attr():
    ref = parse_ref("flows/x.py", {"BUILD_WORKING_DIRECTORY": "/home/u"})
    assert ref.path == Path("/home/u/flows/x.py") and ref.attr is None
    ref = parse_ref("/abs/x.py:my_flow", {})
    assert ref.path == Path("/abs/x.py") and ref.attr == "my_flow"


def test_parse_ref_bad_attr():
    with pytest.raises(UsageError, match="invalid attribute"):
        parse_ref("x.py:not-valid", {})


def test_relative_paths_use_build_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    assert resolve_path("a.py", {"BUILD_WORKING_DIRECTORY": str(tmp_path)}) == tmp_path / "a.py"
    assert resolve_path("a.py", {}) == Path("/a.py")


def test_load_single_flow(monkeypatch):
    monkeypatch.setenv("BUILD_WORKING_DIRECTORY", str(DATA))
    loaded = load_flow("ok_flow.py")
    assert loaded.flow.name == "ok-flow" and loaded.attr == "flow"


def test_load_named_attr():
    loaded = load_flow(f"{DATA}/two_flows.py:second")
    assert loaded.flow.name == "b"


@pytest.mark.parametrize("ref,fragment", [
    ("missing.py", "does not exist"),
    ("two_flows.py", "several Flows"),
    ("two_flows.py:third", "no attribute 'third'"),
    ("not_a_flow.py", "defines no dok Flow"),
    ("not_a_flow.py:flow", "is a int, not a dok Flow"),
    ("syntax_error.py", "syntax error"),
    ("raises_on_import.py", "RuntimeError: no database here"),
    ("cycle_flow.py", "cycle"),
])
def test_errors_name_the_problem(ref, fragment):
    with pytest.raises(UsageError) as info:
        load_flow(f"{DATA}/{ref}")
    assert fragment in str(info.value)
    assert "\n" not in info.value.message


def test_directory_is_refused(tmp_path):
    with pytest.raises(UsageError, match="directory"):
        load_flow(str(tmp_path))


def test_task_functions_pickle_by_value(tmp_path):
    """The flow's functions must travel to workers/bundles without the file being importable there."""
    import cloudpickle

    src = tmp_path / "private_flow.py"
    shutil.copy(DATA / "ok_flow.py", src)
    loaded = load_flow(str(src))
    blob = cloudpickle.dumps(loaded.module.inc)
    src.unlink()  # the module is gone: loading must not need it
    fn = cloudpickle.loads(blob)
    assert fn is not None


def test_sibling_imports_work(tmp_path):
    (tmp_path / "helpers.py").write_text("OFFSET = 7\n")
    (tmp_path / "uses_helper.py").write_text(
        "from dok.core import Flow, task\nimport helpers\n\n@task\ndef f():\n    return helpers.OFFSET\n\n"
        "with Flow('h') as flow:\n    f()\n")
    assert load_flow(str(tmp_path / "uses_helper.py")).flow.name == "h"
