"""Shared helpers for issue 6's e2e tests (test_faults.py, test_security.py, test_bad_input.py).

- `dok(cluster, *args)` runs the real CLI (`python -m dok.launcher`, the code behind `tools/dok`) as a
  subprocess with the cluster's kubeconfig; `Background` runs `dok run` in the background and finds the
  run's identifier in its output.
- `remaining` / `wait_gone`: everything that carries a run's identifier label (Jobs, pods, services,
  config maps, secrets, roles …), and waiting (bounded) until nothing is left.
- `assert_cli_error`: the bad-input contract — one `dok: error:` line naming the offending value, a way to
  fix it, the right exit code, no traceback.
- `kill_container_process`: SIGKILL a pod's container process from the host (PID 1 of a PID namespace
  cannot be SIGKILLed from inside it, so `kubectl exec … kill -9 1` is a no-op).
- Flow sources used by the tests (small: few tasks, a few seconds each; the machine is shared).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from e2e import helpers

IDENT_LABEL = "dok.dev/identifier"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
RUN_LINE = re.compile(r"\[dok\] run ([0-9a-f-]{36}):")
BASE_IMAGE = os.environ.get("DOK_BASE_IMAGE") or "dok-base:bookworm-py3.11"
CA_BUNDLE = os.environ.get("DOK_BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"

# A fan-out whose tasks take `delay` seconds each: long enough to act while workers run, short overall.
SLOW_FLOW = '''
from dok.core import Flow, Parameter, task, unmapped

@task
def numbers(n):
    return list(range(int(n)))

@task
def slow_cube(x, delay):
    import time
    time.sleep(float(delay))
    return x * x * x

@task
def total(xs):
    return sum(xs)

with Flow("{name}") as flow:
    n = Parameter("n", default=8)
    delay = Parameter("delay", default=2.0)
    total(slow_cube.map(numbers(n), unmapped(delay)))
'''


def slow_flow(name: str) -> str:
    return SLOW_FLOW.replace("{name}", name)


def cube_total(n: int) -> int:
    return sum(x ** 3 for x in range(n))


# ---- the CLI ---------------------------------------------------------------------------------------------
def dok_env(cluster: helpers.Cluster | None, **overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if cluster is not None:
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DOK_BASE_IMAGE", BASE_IMAGE)
    if "DOK_BUILD_CA_BUNDLE" not in env and Path(CA_BUNDLE).is_file():
        env["DOK_BUILD_CA_BUNDLE"] = CA_BUNDLE
    env.pop("BUILD_WORKING_DIRECTORY", None)
    env.pop("DOK_WORKING_DIRECTORY", None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def dok(cluster: helpers.Cluster | None, *args: str, timeout: float = 420, env: dict[str, str] | None = None,
        cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dok.launcher", *args], env=env or dok_env(cluster),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
    sys.stderr.write(f"$ dok {' '.join(args)}  -> {proc.returncode} in {time.monotonic() - started:.1f}s\n"
                     f"{proc.stdout}\n{proc.stderr}\n")
    return proc


class Background:
    """`dok …` in the background; output collected by threads; `.identifier` once it printed it."""

    def __init__(self, cluster: helpers.Cluster, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "dok.launcher", *args], env=env or dok_env(cluster),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            t = threading.Thread(target=lambda s=stream, k=sink: k.extend(iter(s.readline, "")), daemon=True)
            t.start()
            self.threads.append(t)

    @property
    def identifier(self) -> str | None:
        match = RUN_LINE.search("".join(self.err))
        return match.group(1) if match else None

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_identifier(self, timeout: float = 300) -> str:
        def probe() -> str | None:
            if self.proc.poll() is not None and not self.identifier:
                raise AssertionError(f"dok ended early ({self.proc.returncode}):\n{self.stdout}\n{self.stderr}")
            return self.identifier
        return helpers.wait_for("the run's identifier in dok's output", probe, timeout=timeout)

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        for t in self.threads:
            t.join(2)
        sys.stderr.write(f"background dok {' '.join(self.args)} -> {self.proc.returncode}\n"
                         f"{self.stdout}\n{self.stderr}\n")
        return code

    def kill(self) -> None:
        """SIGKILL our own child (by its PID) if it still runs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def flow_file(tmp_path: Path, source: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def identifier_of(text: str) -> str:
    match = RUN_LINE.search(text)
    assert match, f"no '[dok] run <id>:' line in:\n{text}"
    return match.group(1)


def build_image_cli(cluster: helpers.Cluster, path: str) -> str:
    """`dok build FILE` (no push); returns the image reference (its last stdout line)."""
    proc = dok(cluster, "build", path, "--no-push", timeout=900)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


# ---- what a run leaves ------------------------------------------------------------------------------------
LABELLED_KINDS = ("jobs", "pods", "services", "configmaps", "secrets", "serviceaccounts", "roles", "rolebindings")


def remaining(cluster: helpers.Cluster, namespace: str, identifier: str) -> list[str]:
    """Every object in `namespace` with the run's identifier label."""
    sel = {IDENT_LABEL: identifier}
    left: list[str] = []
    for kind in LABELLED_KINDS:
        left += [f"{kind}/{o.metadata.name}" for o in helpers.list_by_label(cluster, kind, sel, namespace=namespace)]
    return left + dask_resources_left(cluster, namespace, identifier)


def dask_resources_left(cluster: helpers.Cluster, namespace: str, identifier: str) -> list[str]:
    """The run's dask-kubernetes custom resources (backend "operator"); none when the CRDs are not installed."""
    custom = helpers.k8s.CustomObjectsApi(cluster.api_client)
    left: list[str] = []
    for plural in ("daskclusters", "daskworkergroups"):
        try:
            items = custom.list_namespaced_custom_object("kubernetes.dask.org", "v1", namespace, plural,
                                                         label_selector=f"{IDENT_LABEL}={identifier}")["items"]
        except helpers.k8s.ApiException as err:
            if err.status == 404:
                continue
            raise
        left += [f"{plural}/{o['metadata']['name']}" for o in items]
    return left


def wait_gone(cluster: helpers.Cluster, namespace: str, identifier: str, timeout: float = 60.0) -> float:
    """Seconds until nothing with the identifier is left; AssertionError listing what is left after `timeout`."""
    start = time.monotonic()
    left: list[str] = []
    while time.monotonic() - start < timeout:
        left = remaining(cluster, namespace, identifier)
        if not left:
            took = time.monotonic() - start
            sys.stderr.write(f"run {identifier}: nothing left after {took:.1f} s\n")
            return took
        time.sleep(1.0)
    raise AssertionError(f"still there {timeout:g} s after the run ended: {left}")


def pods_of(cluster: helpers.Cluster, namespace: str, identifier: str, component: str | None = None) -> list[Any]:
    sel = f"{IDENT_LABEL}={identifier}" + (f",{COMPONENT_LABEL}={component}" if component else "")
    return list(cluster.core.list_namespaced_pod(namespace, label_selector=sel).items)


def running(pods: list[Any]) -> list[Any]:
    return [p for p in pods if p.status and p.status.phase == "Running" and not p.metadata.deletion_timestamp]


def workers_of(cluster: helpers.Cluster, namespace: str, identifier: str) -> list[Any]:
    return [p for p in pods_of(cluster, namespace, identifier)
            if (p.metadata.labels or {}).get(COMPONENT_LABEL) != "job"]


def wait_running(cluster: helpers.Cluster, namespace: str, identifier: str, *, workers: int,
                 bg: Background | None = None, timeout: float = 240) -> tuple[Any, list[Any]]:
    """Waits until the run's job pod runs and at least `workers` worker pods run; returns (job pod, workers)."""
    def probe() -> tuple[Any, list[Any]] | None:
        if bg is not None and bg.proc.poll() is not None:
            raise AssertionError(f"dok run ended early ({bg.proc.returncode}):\n{bg.stdout}\n{bg.stderr}")
        job = running(pods_of(cluster, namespace, identifier, "job"))
        ws = running(workers_of(cluster, namespace, identifier))
        if job and len(ws) >= workers:
            return job[0], ws
        return None
    return helpers.wait_for(f"the job pod and {workers} worker pod(s) of run {identifier} running", probe,
                            timeout=timeout, interval=0.5)


# ---- errors ----------------------------------------------------------------------------------------------
def assert_cli_error(proc: subprocess.CompletedProcess[str], code: int, names: tuple[str, ...] | list[str],
                     fix: tuple[str, ...] | list[str] = ()) -> str:
    """The bad-input contract; returns the error line."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, f"traceback without --debug:\n{text}"
    lines = [line for line in proc.stderr.splitlines() if re.match(r"^dok(:| [a-z]+:) error: ", line)]
    assert len(lines) == 1, f"expected exactly one 'dok: error:' line, got {lines}:\n{text}"
    line = lines[0]
    for name in names:
        assert name in line, f"the error line does not name {name!r}: {line!r}"
    after = proc.stderr.split(line, 1)[1].splitlines()
    hint = next((h.strip() for h in after[:3] if h.strip().startswith("hint:")), "")
    if not hint and "usage:" in proc.stderr.split(line, 1)[0]:  # argparse: the usage says how to call it
        hint = proc.stderr.split(line, 1)[0].strip()
    assert hint or "(hint:" in line or fix, f"no hint saying how to fix it after {line!r}:\n{text}"
    for needle in fix:
        assert needle in line or needle in hint, f"{needle!r} (how to fix) not in {line!r} / {hint!r}"
    assert proc.returncode == code, f"exit code {proc.returncode}, wanted {code}: {line}"
    return line


# ---- images ----------------------------------------------------------------------------------------------
def image_tags(repository: str) -> list[str]:
    """Local docker tags of `repository` (e.g. 'dok-e2e-bi-pip')."""
    import docker

    client = docker.from_env()
    return sorted(t for img in client.images.list(name=repository) for t in img.tags
                  if t.rsplit(":", 1)[0] == repository)


def remove_image_tags(repository: str) -> None:
    import docker

    client = docker.from_env()
    for tag in image_tags(repository):
        try:
            client.images.remove(tag, noprune=False)
        except docker.errors.APIError:
            pass


# ---- killing a container's process from the host ----------------------------------------------------------
def container_pid(pod_name: str, namespace: str, container: str) -> int:
    """Host PID of the container's main process (dockershim labels its containers)."""
    import docker

    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"io.kubernetes.pod.name={pod_name}",
                                                      f"io.kubernetes.pod.namespace={namespace}",
                                                      f"io.kubernetes.container.name={container}"]})
    assert found, f"no running container {container} of pod {namespace}/{pod_name}"
    pid = int(found[0].attrs["State"]["Pid"])
    assert pid > 1, found[0].attrs["State"]
    return pid


def kill_container_process(pod_name: str, namespace: str, container: str = "runner") -> int:
    """SIGKILL the container's PID 1 from the host; returns the PID it killed."""
    pid = container_pid(pod_name, namespace, container)
    os.kill(pid, signal.SIGKILL)
    return pid
