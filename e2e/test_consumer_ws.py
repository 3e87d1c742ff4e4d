"""dok used from another Bazel workspace: e2e/consumer_ws (its own WORKSPACE with `local_repository(name = "dok")`
and `dok_workspace()`) built and run by a Bazel of its own (own --output_user_root under the test's tmpdir):
the dok_flow spec lists the consumer's library files and not dok's, `<flow>_local` runs the flow through the
macro, `<flow>_test` passes, and a failing flow's `_test` fails.

Not sandboxed (tag `local`): the nested Bazel reads the dok checkout this file is in (the consumer's
local_repository path is "../..") and writes only under the test's tmpdir (`--symlink_prefix=/`: no bazel-*
links in the source tree). A cold nested Bazel takes ~30-60 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]  # the runfiles entry is a symlink into the source tree
WORKSPACE = CHECKOUT / "e2e" / "consumer_ws"
TIMEOUT = 600


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class NestedBazel:
    """`bazel` on the consumer workspace with its own output root and a clean environment (none of the outer
    test's PYTHONPATH, runfiles or TEST_* variables, which would hide what the consumer's targets bring)."""

    def __init__(self, root: Path) -> None:
        self.binary = shutil.which("bazel-4", path="/usr/bin:/usr/local/bin") or shutil.which("bazel") or "bazel"
        self.startup = [f"--output_user_root={root / 'out'}", "--max_idle_secs=120"]
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(root / "home"),
            "LANG": "C.UTF-8",
        }
        for name in ("DOK_VENV", "JAVA_HOME"):
            if os.environ.get(name):
                self.env[name] = os.environ[name]
        (root / "home").mkdir(parents=True, exist_ok=True)

    def __call__(self, command: str, *args: str) -> Result:
        argv = [self.binary, *self.startup, command]
        if command in ("build", "run", "test"):
            argv.append("--symlink_prefix=/")
        proc = subprocess.run([*argv, *args], cwd=WORKSPACE, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def info(self, key: str) -> Path:
        result = self("info", key)
        assert result.code == 0, result.err
        return Path(result.out.strip())


@pytest.fixture(scope="module")
def bazel() -> Iterator[NestedBazel]:
    assert (WORKSPACE / "WORKSPACE").is_file(), f"no consumer workspace at {WORKSPACE}"
    base = Path(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="consumer-", dir=base))
    nested = NestedBazel(root)
    try:
        yield nested
    finally:
        nested("shutdown")
        shutil.rmtree(root, ignore_errors=True)


def test_spec_ships_the_consumers_library_not_dok(bazel: NestedBazel) -> None:
    result = bazel("build", "//flows:hello_spec")
    assert result.code == 0, result.err[-3000:]
    spec = json.loads((bazel.info("bazel-bin") / "flows" / "hello.dokflow.json").read_text())
    assert spec["flow"] == "consumer/flows/hello.py"
    assert spec["label"] == "//flows:hello"
    # Only the consumer's own py_library; dok's packages (external repository "dok") are in every image already.
    assert [f["runfiles"] for f in spec["files"]] == ["consumer/lib/shout.py"]
    assert spec["files"][0]["image"] == "/opt/flow/runfiles/consumer/lib/shout.py"
    assert spec["pythonpath"] == ["/opt/flow/runfiles/consumer/flows", "/opt/flow/runfiles/consumer"]
    assert spec["params"] == {"text": "hello from another workspace"} and spec["max_workers"] == 2


def test_local_target_runs_the_flow(bazel: NestedBazel) -> None:
    result = bazel("run", "//flows:hello_local", "--", "--param", "text=dok rocks")
    assert result.code == 0, (result.out + result.err)[-3000:]
    assert "flow 'hello' finished: Success" in result.out
    assert '"join": "DOK! ROCKS!"' in result.out  # the consumer's lib.shout ran; the --param replaced the default


def test_test_targets_pass_and_fail_with_their_flow(bazel: NestedBazel) -> None:
    passed = bazel("test", "//flows:hello_test")
    assert passed.code == 0, (passed.out + passed.err)[-3000:]
    failed = bazel("test", "//flows:broken_test")
    assert failed.code == 3, (failed.out + failed.err)[-3000:]  # Bazel: build OK, tests failed
    log = (bazel.info("bazel-testlogs") / "flows" / "broken_test" / "test.log").read_text()
    assert "RuntimeError: broken on purpose" in log
    assert "the flow did not succeed locally (dok exit code 1)" in log
