"""The `dok` CLI in local mode, end to end: exit codes 0/1/2, progress, final State, one-line errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dok.launcher.cli import build_parser, main

DATA = Path(__file__).resolve().parent / "data"


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_success_prints_progress_and_result():
    code, out, err = run_cli("run", f"{DATA}/ok_flow.py", "--local", "--param", "n=4", "--max-workers", "2")
    assert code == 0, err
    assert "inc[3] ok" in out
    assert "Success" in out
    assert '"total": 10' in out  # 1+2+3+4


def test_param_json_parsing():
    code, out, _ = run_cli("run", f"{DATA}/ok_flow.py", "--local", "-p", "n=2", "-p", "offset=10")
    assert code == 0
    assert '"total": 21' in out


def test_failed_flow_exits_1_and_names_the_error():
    code, out, err = run_cli("run", f"{DATA}/failing_flow.py", "--local")
    assert code == 1
    assert "explode" in out and "ValueError: boom 42" in out
    assert "Failed" in out
    assert "Traceback" not in out + err


def test_debug_shows_traceback_of_failed_task():
    code, out, _ = run_cli("run", f"{DATA}/failing_flow.py", "--local", "--debug")
    assert code == 1
    assert "Traceback (most recent call last)" in out and "in explode" in out


@pytest.mark.parametrize("argv,fragment", [
    (("run", "nope.py", "--local"), "does not exist"),
    (("run", f"{DATA}/ok_flow.py", "--local", "--param", "m=1"), "allowed parameters: n, offset"),
    (("run", f"{DATA}/ok_flow.py", "--local", "--param", "n"), "malformed --param"),
    (("run", f"{DATA}/required_param.py", "--local"), "needs a value for parameter"),
    (("run", f"{DATA}/ok_flow.py", "--local", "--min-workers", "3", "--max-workers", "2"),
     "min_workers=3: must be <= max_workers (2)"),
    (("run", f"{DATA}/ok_flow.py", "--local", "--max-workers", "0"), "max_workers=0: must be an integer >= 1"),
    (("run", f"{DATA}/cycle_flow.py", "--local"), "cycle"),
    (("run", f"{DATA}/ok_flow.py", "--local", "--worker-processes", "2"), "--local runs have no pods"),
    (("run", f"{DATA}/not_a_flow.py:flow", "--local"), "not a dok Flow"),
])
def test_usage_errors_exit_2_one_line(argv, fragment):
    code, out, err = run_cli(*argv)
    assert code == 2, (out, err)
    assert fragment in err
    assert err.startswith("dok: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [(), ("frobnicate",), ("run",), ("run", "x.py", "--max-workers", "many"),
                                  ("cleanup",), ("logs",)])
def test_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2


def test_parser_knows_all_commands():
    parser = build_parser()
    for argv in (["run", "f.py", "--local", "--detach", "--push", "--registry", "localhost:5000", "-n", "ns",
                  "--active-deadline", "60", "--ttl", "30", "--worker-start-timeout", "20",
                  "--secret-env", "TOKEN=creds:token", "--kubeconfig", "/k", "--base-image", "b:1",
                  "--ca-bundle", "/c.pem", "--debug"],
                 ["build", "f.py:flow", "--push", "--registry", "r:5000"],
                 ["status", "ID"], ["logs", "ID", "--follow", "--workers"], ["cancel", "ID"],
                 ["cleanup", "ID"], ["cleanup", "--all"], ["list"], ["setup", "-n", "x"], ["--debug", "list"]):
        parser.parse_args(argv)


def _env_for_subprocess():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def test_subprocess_exit_codes_and_relative_path():
    """A real process: exit codes, and FILE relative to BUILD_WORKING_DIRECTORY (as under `bazel run`)."""
    env = _env_for_subprocess()
    env["BUILD_WORKING_DIRECTORY"] = str(DATA)
    ok = subprocess.run([sys.executable, "-m", "dok.launcher", "run", "ok_flow.py", "--local"], cwd="/",
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert '"total": 6' in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "dok.launcher", "run", "failing_flow.py", "--local"], cwd="/",
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "ValueError: boom 42" in bad.stdout
    assert "Traceback" not in bad.stderr


def test_local_cluster_adapts_up_to_max_workers():
    code, out, err = run_cli("run", f"{DATA}/slow_map.py", "--local", "--min-workers", "1", "--max-workers", "2")
    assert code == 0, err
    assert "[dok] workers: 2" in out
    assert "workers: 3" not in out
