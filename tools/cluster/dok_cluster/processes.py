"""Daemons started by `up`, stopped by `down` — only by the PIDs recorded here, never by name.

Each PID file holds {"pid", "starttime", "argv"}: the kernel start time (from /proc/<pid>/stat) guards
against a recycled PID, so `down` can only ever signal the exact process `up` started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dok_cluster.components import BASE_ENV, Component

MAX_LOG_BYTES = 64 << 20


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    starttime: str


def _starttime(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime); the command (field 2) may contain spaces, so split after its closing ')'
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # zombie: gone for our purposes
        return None
    return fields[19]


def read(pids_dir: Path, name: str) -> Running | None:
    """The recorded process if it is still the one we started and alive, else None."""
    try:
        rec = json.loads((pids_dir / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    if _starttime(int(rec["pid"])) != rec["starttime"]:
        return None
    return Running(name, int(rec["pid"]), rec["starttime"])


def start(component: Component, *, pids_dir: Path, logs_dir: Path) -> Running:
    pids_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / f"{component.name}.log"
    if log_path.is_file() and log_path.stat().st_size > MAX_LOG_BYTES:
        log_path.replace(log_path.with_suffix(".log.1"))  # keep one previous generation
    log = log_path.open("ab")
    log.write(f"==== dok_cluster: starting {component.name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ====\n".encode())
    log.flush()
    env = dict(BASE_ENV, **component.env)
    proc = subprocess.Popen(  # noqa: S603 (fixed argv)
        list(component.argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True, cwd="/",  # own session: survives `bazel run`/pytest, never gets their signals
    )
    log.close()
    starttime = _starttime(proc.pid) or ""
    record = {"pid": proc.pid, "starttime": starttime, "argv": list(component.argv)}
    tmp = pids_dir / f".{component.name}.json.tmp"
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(pids_dir / f"{component.name}.json")
    return Running(component.name, proc.pid, starttime)


def exited_early(running: Running) -> bool:
    return _starttime(running.pid) != running.starttime


def stop(pids_dir: Path, name: str, *, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; returns True when a process was stopped."""
    running = read(pids_dir, name)
    pid_file = pids_dir / f"{name}.json"
    if running is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(running.pid)
        if _starttime(running.pid) != running.starttime:
            break
        time.sleep(0.1)
    else:
        os.kill(running.pid, signal.SIGKILL)
        for _ in range(50):
            _reap(running.pid)
            if _starttime(running.pid) != running.starttime:
                break
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collects the exit status when the daemon is our own child (same `up` process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
