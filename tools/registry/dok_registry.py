"""A real OCI registry for tests and CI: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

dockerd allows plain-HTTP registries on 127.0.0.0/8, so `docker push 127.0.0.1:PORT/x:1` just works.
Optional htpasswd (bcrypt) auth for credential tests. Each registry has its own directory holding its
config, storage, htpasswd file, log and pid file; `stop` kills only the pid it recorded.

    python tools/registry/dok_registry.py start [--port 5000] [--dir DIR] [--user U --password P]
    python tools/registry/dok_registry.py stop  [--dir DIR]
    python tools/registry/dok_registry.py status [--dir DIR]

From Python (pytest fixtures): `reg = start(port=0, user="u", password="p")`, `reg.url` ('127.0.0.1:PORT'),
`reg.stop()`. Installs the `docker-registry` apt package when missing (needs root).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BINARY = "docker-registry"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "dok-registry"


class RegistryToolError(RuntimeError):
    pass


@dataclass(frozen=True, kw_only=True)
class Registry:
    url: str  # host:port, as used in image references
    port: int
    directory: Path
    pid: int
    user: str | None = None
    password: str | None = None

    def stop(self) -> None:
        stop(self.directory)


def _say(message: str) -> None:
    print(f"dok-registry: {message}", file=sys.stderr, flush=True)


def ensure_installed() -> str:
    path = shutil.which(BINARY) or (f"/usr/bin/{BINARY}" if os.path.exists(f"/usr/bin/{BINARY}") else None)
    if path:
        return path
    if os.geteuid() != 0:
        raise RegistryToolError(f"{BINARY} is not installed; run: sudo apt-get install {BINARY}")
    _say(f"installing {BINARY} (apt)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", BINARY], check=True, env=env)
    path = shutil.which(BINARY) or f"/usr/bin/{BINARY}"
    if not os.path.exists(path):
        raise RegistryToolError(f"{BINARY} still missing after apt-get install")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def bcrypt_htpasswd(user: str, password: str) -> str:
    """One htpasswd line with a bcrypt hash (the only scheme distribution accepts)."""
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbB", user, password], check=True, capture_output=True, text=True)
        return out.stdout.strip() + "\n"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # glibc/libxcrypt bcrypt; Python <= 3.12

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not hashed or not hashed.startswith("$2"):
        raise RegistryToolError("cannot make a bcrypt hash: install apache2-utils (htpasswd)")
    return f"{user}:{hashed}\n"


def _config(*, port: int, storage: Path, htpasswd: Path | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: dok-registry", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


def _probe(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def status(directory: Path | str = DEFAULT_DIR) -> Registry | None:
    state_file = Path(directory) / "state.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if not _alive(state["pid"]) or _probe(state["port"]) is None:
        return None
    return Registry(url=f"127.0.0.1:{state['port']}", port=state["port"], directory=Path(directory), pid=state["pid"],
                    user=state.get("user"), password=state.get("password"))


def start(*, port: int | None = None, directory: Path | str | None = None, user: str | None = None,
          password: str | None = None, timeout: float = 20.0) -> Registry:
    """Starts a registry (port None: 5000 if free, else a free one; 0: a free one). Reuses a running one
    recorded in `directory` when it matches the requested port/credentials."""
    binary = ensure_installed()
    directory = Path(directory) if directory else (DEFAULT_DIR if port is None else Path(tempfile.mkdtemp(prefix="dok-registry-")))
    directory.mkdir(parents=True, exist_ok=True)
    running = status(directory)
    if running is not None:
        if (port in (None, 0, running.port)) and running.user == user and running.password == password:
            return running
        stop(directory)
    if port is None:
        port = 5000 if _port_free(5000) else free_port()
    elif port == 0:
        port = free_port()
    htpasswd = None
    if user is not None:
        htpasswd = directory / "htpasswd"
        htpasswd.write_text(bcrypt_htpasswd(user, password or ""))
    storage = directory / "storage"
    storage.mkdir(exist_ok=True)
    config = directory / "config.yml"
    config.write_text(_config(port=port, storage=storage, htpasswd=htpasswd))
    log = open(directory / "registry.log", "ab")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while _probe(port) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (directory / "registry.log").read_text(errors="replace")[-2000:]
            raise RegistryToolError(f"docker-registry did not start on 127.0.0.1:{port}:\n{tail}")
        time.sleep(0.1)
    (directory / "state.json").write_text(json.dumps({"pid": process.pid, "port": port, "user": user, "password": password}))
    return Registry(url=f"127.0.0.1:{port}", port=port, directory=directory, pid=process.pid, user=user, password=password)


def stop(directory: Path | str = DEFAULT_DIR) -> bool:
    """Stops the registry recorded in `directory` (by its pid only). Returns whether one was running."""
    state_file = Path(directory) / "state.json"
    if not state_file.exists():
        return False
    pid = json.loads(state_file.read_text())["pid"]
    state_file.unlink()
    if not _alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not _alive(pid):
            break
        try:  # reap if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Debian's docker-registry on 127.0.0.1 (tests, CI).")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--dir", default=str(DEFAULT_DIR), help=f"state/storage directory (default {DEFAULT_DIR})")
    parser.add_argument("--port", type=int, default=None, help="default: 5000 if free, else a free port")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            reg = start(port=args.port, directory=args.dir, user=args.user, password=args.password)
            _say(f"running on {reg.url} (pid {reg.pid}, dir {reg.directory}{', htpasswd auth' if reg.user else ''})")
            print(reg.url)
        elif args.command == "stop":
            _say("stopped" if stop(args.dir) else "not running")
        else:
            reg = status(args.dir)
            if reg is None:
                _say("not running")
                return 1
            _say(f"running on {reg.url} (pid {reg.pid})")
            print(reg.url)
    except RegistryToolError as exc:
        _say(str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
