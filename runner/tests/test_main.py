"""`python -m dok.runner`: usage, and a job pod environment that is missing settings (exit 3, State written)."""

from __future__ import annotations

import os
import subprocess
import sys

from dok.core import decode_summary
from dok.runner.__main__ import main


def test_help_and_usage(capsys):
    assert main(["--help"]) == 0
    assert main(["a", "b"]) == 3
    assert "usage: python -m dok.runner" in capsys.readouterr().err


def test_missing_environment_exits_3_and_writes_the_reason(tmp_path, monkeypatch):
    for var in list(os.environ):
        if var.startswith("DOK_"):
            monkeypatch.delenv(var)
    log = tmp_path / "termination-log"
    monkeypatch.setenv("DOK_TERMINATION_LOG", str(log))
    monkeypatch.setenv("DOK_IDENTIFIER", "abc")
    assert main([str(tmp_path / "flow.dokflow")]) == 3
    state = decode_summary(log.read_text())
    assert state.is_failed() and "DOK_FLOW_NAME" in state.message and "DOK_POD_IP" in state.message


def test_module_entrypoint_exit_code(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOK_")}
    env["DOK_TERMINATION_LOG"] = str(tmp_path / "t")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run([sys.executable, "-m", "dok.runner", str(tmp_path / "missing.dokflow")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "cannot start the run: missing job pod environment" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_pickup_server_starts_before_the_heavy_imports_only_when_a_caller_waits():
    from dok.core.runspec import env_var
    from dok.runner.__main__ import early_pickup_server

    assert early_pickup_server({}) is None  # detached: nobody picks up
    assert early_pickup_server({env_var("result_pickup_timeout"): "120",
                                env_var("result_location"): "s3://bucket/runs"}) is None  # the store has them
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOK_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    code = ("import sys\nfrom dok.runner.__main__ import early_pickup_server\n"
            "s = early_pickup_server({'DOK_RESULT_PICKUP_TIMEOUT': '120'})\n"
            "assert s is not None and s.port == 8788 or s is None\n"
            "heavy = [m for m in ('distributed', 'kubernetes', 'numpy') if m in sys.modules]\n"
            "print('heavy:', heavy)\n"
            "s is not None and s.close()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "heavy: []" in proc.stdout  # listening before distributed or the Kubernetes client is imported
