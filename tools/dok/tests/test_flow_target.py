"""The dok_flow targets' command lines (from the spec the macro wrote for //examples:wordcount), the pin check,
and the generated entry point end to end in test and local mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dok_flow_target as ft

RUNFILES = Path.cwd().parent  # Bazel runs tests in <runfiles>/<workspace>
SPEC_PATH = Path("examples/wordcount.dokflow.json")


@pytest.fixture
def spec() -> ft.FlowSpec:
    return ft.load_spec(SPEC_PATH)


def test_spec_lists_the_deps_files_but_not_dok_or_the_flow(spec: ft.FlowSpec) -> None:
    shipped = {f.runfiles: f.image for f in spec.files}
    assert shipped == {
        "dok/examples/lib/stopwords.txt": "/opt/flow/runfiles/dok/examples/lib/stopwords.txt",
        "dok/examples/lib/wordlib.py": "/opt/flow/runfiles/dok/examples/lib/wordlib.py",
    }
    assert spec.flow == "dok/examples/wordcount.py"
    assert spec.label == "//examples:wordcount"
    # The same import roots as the local run: flow directory, the py_library's imports, the repository root.
    assert spec.pythonpath == ("/opt/flow/runfiles/dok/examples", "/opt/flow/runfiles/dok/examples/lib",
                               "/opt/flow/runfiles/dok")
    for f in spec.files:
        assert (RUNFILES / f.runfiles).is_file()


def test_local_and_test_command_lines(spec: ft.FlowSpec) -> None:
    flow = str(RUNFILES / "dok/examples/wordcount.py")
    assert ft.cli_args(spec, "local", RUNFILES) == ["run", flow, "--local", "--param", "repeat=4", "--max-workers", "2"]
    # Arguments after `--` come last; a --param given there replaces the macro's default of the same name.
    assert ft.cli_args(spec, "local", RUNFILES, ["-p", "repeat=1", "--max-workers", "1"]) == [
        "run", flow, "--local", "--max-workers", "2", "-p", "repeat=1", "--max-workers", "1"]
    assert ft.cli_args(spec, "local", RUNFILES, ["--param=repeat=1"])[3:5] == ["--max-workers", "2"]


def test_image_and_run_command_lines(spec: ft.FlowSpec) -> None:
    real = {str(RUNFILES / f.runfiles): f"/src/{f.runfiles}" for f in spec.files}
    image = ft.cli_args(spec, "image", RUNFILES, ["--no-push"], realpath=real.__getitem__)
    flow = str(RUNFILES / "dok/examples/wordcount.py")
    inputs = ["--file", "/src/dok/examples/lib/stopwords.txt=/opt/flow/runfiles/dok/examples/lib/stopwords.txt",
              "--file", "/src/dok/examples/lib/wordlib.py=/opt/flow/runfiles/dok/examples/lib/wordlib.py",
              "--env-var", "PYTHONPATH=/opt/flow/runfiles/dok/examples:/opt/flow/runfiles/dok/examples/lib:"
              "/opt/flow/runfiles/dok",
              "--python-dependency=toolz==1.2.0"]
    assert image == ["build", flow, *inputs, "--no-push"]
    run = ft.cli_args(spec, "run", RUNFILES, ["--max-workers", "1"], realpath=real.__getitem__)
    assert run == ["run", flow, "--param", "repeat=4", "--max-workers", "2", *inputs, "--max-workers", "1"]


def test_real_paths_are_the_same_for_every_target(spec: ft.FlowSpec) -> None:
    # Runfiles symlinks differ per target; their real paths (what goes into the image's content hash) do not.
    args = ft.cli_args(spec, "image", RUNFILES)
    sources = [a.split("=", 1)[0] for a in args[args.index("--file"):] if a.startswith("/")]
    assert sources and all(".runfiles/" not in s for s in sources)


def test_command_lines_parse_as_dok_commands(spec: ft.FlowSpec) -> None:
    from dok.launcher.cli import build_parser

    for mode in ft.MODES:
        args = build_parser().parse_args(ft.cli_args(spec, mode, RUNFILES, realpath=str))
        assert args.command == ("build" if mode == "image" else "run")
        if mode == "image":
            assert args.python_dependency == ["toolz==1.2.0"] and len(args.file) == 2
        else:
            assert args.max_workers == 2 and args.param == ["repeat=4"]


def test_values_are_json_encoded_so_strings_stay_strings() -> None:
    assert ft.param_args({"s": "10", "n": 10, "xs": [1, "a"]}, []) == [
        "--param", 'n=10', "--param", 's="10"', "--param", 'xs=[1, "a"]']


@pytest.mark.parametrize("requirement,installed,problem", [
    ("toolz==1.2.0", "1.2.0", None),
    ("toolz==1.1.0", "1.2.0", "the local interpreter has toolz==1.2.0"),
    ("missing-pkg==1.0", None, "not installed"),
    ("toolz>=1", "0.1", None),  # only exact pins are compared
    ("pandas[excel]==2.2.3; python_version > '3'", "2.2.3", None),
])
def test_pin_mismatches(requirement: str, installed: str | None, problem: str | None) -> None:
    found = ft.pin_mismatches([requirement], installed=lambda name: installed)
    assert (found[0] if found else None) is None if problem is None else problem in found[0]


def test_unknown_mode_is_an_error(spec: ft.FlowSpec) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        ft.cli_args(spec, "deploy", RUNFILES)
    assert ft.main(SPEC_PATH, runfiles_root=RUNFILES, argv=["deploy"]) == 2


def _entry_point(tmp_path: Path, spec: dict[str, object]) -> int:
    """The generated main with a spec of our own, in a fresh process (as a dok_flow target runs it)."""
    (tmp_path / "flow.dokflow.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = ("import sys, dok_flow_target as ft\n"
            f"sys.exit(ft.main({str(tmp_path / 'flow.dokflow.json')!r}, runfiles_root={str(RUNFILES)!r}, "
            "argv=sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, "test"], env=env, timeout=240).returncode


def test_test_mode_fails_when_the_flow_fails(tmp_path: Path) -> None:
    flow = tmp_path / "bad.py"
    flow.write_text("from dok.core import Flow, task\n\n@task\ndef boom():\n    raise ValueError('no')\n\n"
                    "with Flow('bad') as flow:\n    boom()\n")
    spec = {"label": "//t:bad", "flow": str(flow), "params": {}, "test_params": {}, "max_workers": 1}
    assert _entry_point(tmp_path, spec) == 1


def test_test_mode_fails_on_a_pin_the_interpreter_does_not_have(tmp_path: Path) -> None:
    spec = {"label": "//examples:wordcount", "flow": "dok/examples/wordcount.py", "params": {}, "test_params": {},
            "python_dependencies": ["toolz==0.0.1"]}
    assert _entry_point(tmp_path, spec) == 1
