"""e2e (issues 5 and 6, worker faults) on the real cluster:

- a worker pod deleted while tasks run: Dask reschedules its tasks, the runner drops it from the cluster's
  spec, Adaptive brings a replacement pod, the flow ends in Success with correct results;
- workers that cannot start (an unschedulable resource request; a worker image that cannot be pulled) fail
  the run within the configured DOK_WORKER_START_TIMEOUT, with the pod's name and reason in the message,
  exit code 3, and no worker pod left;
- the job pod deleted mid-run: no worker pod of the run remains within 60 s (runner cleanup, and the
  ownerReference to the job pod for the garbage collector).
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, decode_summary, task, unmapped
from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL, run_labels
from e2e import helpers

BASE_IMAGE = os.environ.get("DOK_BASE_IMAGE") or "dok-base:bookworm-py3.11"
CA_BUNDLE = os.environ.get("DOK_BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
UNPULLABLE_IMAGE = "localhost:5999/dok-e2e/no-such-image:1"  # nothing listens there: the pull fails locally


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def slow_cube(x: int, delay: float) -> int:
    import time as _time

    _time.sleep(delay)
    return x * x * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def faults_flow() -> Flow:
    with Flow("e2e-faults") as flow:
        n = Parameter("n", default=24)
        delay = Parameter("delay", default=2.0)
        total(slow_cube.map(numbers(n), unmapped(delay)))
    return flow


@pytest.fixture(scope="module")
def built_env(cluster: helpers.Cluster) -> Any:
    import dok.builder

    env = DaskOnKubernetesEnvironment(base_image=BASE_IMAGE, image_name="dok-e2e-faults", max_workers=2)
    return dok.builder.build(env, faults_flow(), push=False, ca_bundle=CA_BUNDLE)


def worker_selector(identifier: str) -> str:
    return f"{IDENTIFIER_LABEL}={identifier},{COMPONENT_LABEL}=worker"


def running_workers(cluster: helpers.Cluster, namespace: str, identifier: str) -> list[Any]:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=worker_selector(identifier)).items
    return [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]


def no_worker_left(cluster: helpers.Cluster, namespace: str, identifier: str, *, timeout: float = 60) -> float:
    t0 = time.monotonic()
    helpers.wait_for("no worker pod of the run left",
                     lambda: not cluster.core.list_namespaced_pod(
                         namespace, label_selector=worker_selector(identifier)).items, timeout=timeout, interval=1)
    return time.monotonic() - t0


def outcome_text(handle: Any, lines: list[str]) -> tuple[Any, str]:
    """(state or None, the run's failure text) from `handle.wait()` whether it returns a State or raises."""
    try:
        state = handle.wait(stream_logs=True, timeout=300, cleanup=False,
                            on_line=lambda line: (lines.append(line), print(line)))
    except Exception as exc:  # noqa: BLE001 - the launcher may raise an InfrastructureError instead
        return None, f"{type(exc).__name__}: {exc}\n" + "\n".join(lines)
    return state, f"{state.message}\n" + "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class DeletedWorkerRun:
    """What `run_deleting_one_worker` saw: the run's handle, its final State and log lines, the deleted
    worker pod's name and every worker pod name seen running."""

    handle: Any
    state: Any
    lines: list[str]
    victim: str
    seen: frozenset[str]

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


def run_deleting_one_worker(cluster: helpers.Cluster, namespace: str, built_env: Any, *, n: int, delay: float,
                            **options: Any) -> DeletedWorkerRun:
    """Runs the faults flow on 2 workers, force-deletes one running worker pod once both have worked on tasks
    for a few seconds (a saboteur thread), waits for the end and asserts what every such run must give: a
    worker was deleted, the flow succeeded, the result is right. The caller checks the backend's own traces."""
    import dok.launcher

    handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": n, "delay": delay},
                                  max_workers=2, worker_start_timeout=120, **options)
    seen: set[str] = set()
    victim: dict[str, str] = {}

    def saboteur() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pods = running_workers(cluster, namespace, handle.identifier)
            seen.update(p.metadata.name for p in pods)
            if len(pods) == 2 and not victim:
                time.sleep(3)  # let both work on tasks first
                name = pods[0].metadata.name
                cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
                victim["name"] = name
            time.sleep(0.5)

    thread = threading.Thread(target=saboteur, daemon=True)
    thread.start()
    lines: list[str] = []
    state = handle.wait(stream_logs=True, timeout=600, cleanup=False,
                        on_line=lambda line: (lines.append(line), print(line)))
    log = "\n".join(lines)
    assert victim, f"never saw 2 running workers to delete one\n{log}"
    assert state.is_successful(), f"{state!r}\n{log}"
    assert [str(v) for v in (state.result or {}).values()] == [str(sum(x ** 3 for x in range(n)))], state.result
    return DeletedWorkerRun(handle=handle, state=state, lines=lines, victim=victim["name"], seen=frozenset(seen))


def test_deleted_worker_pod_is_replaced_and_the_flow_succeeds(cluster: helpers.Cluster, namespace: str,
                                                               built_env: Any) -> None:
    run = run_deleting_one_worker(cluster, namespace, built_env, n=24, delay=2.0)
    log = run.log
    assert f"{run.victim} will be replaced" in log or f"worker {run.victim} left" in log, log
    requested = {line.split("requested worker ")[1].split()[0] for line in run.lines if "requested worker " in line}
    assert len(requested) >= 3, f"no replacement worker was requested: {requested}\n{log}"
    no_worker_left(cluster, namespace, run.handle.identifier)
    run.handle.cleanup()


def test_deleted_worker_pod_on_the_operator_backend_still_succeeds(cluster: helpers.Cluster, namespace: str,
                                                                  built_env: Any, dask_operator: None) -> None:
    """Backend "operator": a worker pod deleted mid-run comes back (the operator's Deployment recreates it under
    the same Dask worker name, or dok asks for another worker) and the flow still succeeds."""
    run = run_deleting_one_worker(cluster, namespace, built_env, n=24, delay=2.0, backend="operator")
    assert len(run.seen) >= 3, f"the deleted worker pod was never replaced: {sorted(run.seen)}"
    no_worker_left(cluster, namespace, run.handle.identifier)
    run.handle.cleanup()


def test_unschedulable_workers_fail_the_run_within_the_timeout(cluster: helpers.Cluster, namespace: str,
                                                               built_env: Any) -> None:
    import dok.launcher

    timeout = 15
    started = time.monotonic()
    handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": 4, "delay": 0.1},
                                  min_workers=1, max_workers=2, worker_start_timeout=timeout,
                                  worker_resources={"requests": {"cpu": "64"}})
    lines: list[str] = []
    state, text = outcome_text(handle, lines)
    elapsed = time.monotonic() - started
    assert state is None or state.is_failed(), text
    assert "Unschedulable" in text and "Insufficient cpu" in text, text
    assert f"dok-e2e-faults-{handle.identifier[:8]}-worker-" in text, text
    assert elapsed < timeout + 60, f"took {elapsed:.0f}s"
    no_worker_left(cluster, namespace, handle.identifier)
    handle.cleanup()
    print(f"unschedulable: failed after {elapsed:.1f}s (timeout {timeout}s)")


def _runner_job(*, name: str, image: str, worker_image: str, identifier: str, flow_name: str,
                service_account: str, start_timeout: int) -> dict[str, Any]:
    """A minimal Job running the runner, per DEVELOPERS.md's "Job pod environment" (so the worker image can
    differ from the job's image)."""
    def field(var: str, path: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    labels = run_labels(identifier=identifier, flow_name=flow_name, component="job")
    env = [{"name": "DOK_IDENTIFIER", "value": identifier}, {"name": "DOK_FLOW_NAME", "value": flow_name},
           {"name": "DOK_IMAGE", "value": worker_image}, {"name": "DOK_MIN_WORKERS", "value": "1"},
           {"name": "DOK_MAX_WORKERS", "value": "1"},
           {"name": "DOK_PARAMETERS", "value": json.dumps({"n": 2, "delay": 0.1})},
           {"name": "DOK_WORKER_START_TIMEOUT", "value": str(start_timeout)},
           field("DOK_NAMESPACE", "metadata.namespace"), field("DOK_POD_NAME", "metadata.name"),
           field("DOK_POD_UID", "metadata.uid"), field("DOK_POD_IP", "status.podIP")]
    container = {
        "name": "runner", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "dok.runner", "/opt/dok/flow.dokflow"], "env": env,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "File",
    }
    pod = {"restartPolicy": "Never", "serviceAccountName": service_account, "terminationGracePeriodSeconds": 20,
           "containers": [container], "volumes": [{"name": "tmp", "emptyDir": {}}]}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": labels},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": pod}}}


def test_unpullable_worker_image_fails_the_run_naming_the_pull_error(cluster: helpers.Cluster, namespace: str,
                                                                     built_env: Any) -> None:
    import dok.launcher

    setup = dok.launcher.setup(built_env, namespace=namespace)
    identifier = str(uuid.uuid4())
    timeout = 20
    job = _runner_job(name=f"dok-e2e-badimage-{identifier[:8]}", image=built_env.image,
                      worker_image=UNPULLABLE_IMAGE, identifier=identifier, flow_name="e2e-faults",
                      service_account=setup.service_account, start_timeout=timeout)
    started = time.monotonic()
    cluster.batch.create_namespaced_job(namespace, job)
    selector = f"{IDENTIFIER_LABEL}={identifier},{COMPONENT_LABEL}=job"

    def terminated() -> Any:
        for pod in cluster.core.list_namespaced_pod(namespace, label_selector=selector).items:
            for status in pod.status.container_statuses or []:
                if status.state.terminated is not None:
                    return pod.metadata.name, status.state.terminated
        return None

    pod_name, term = helpers.wait_for("the job pod to end", terminated, timeout=timeout + 90, interval=1)
    elapsed = time.monotonic() - started
    log = helpers.pod_logs(cluster.core, namespace, pod_name)
    assert term.exit_code == 3, f"exit code {term.exit_code}\n{log}"
    state = decode_summary(term.message)
    assert state.is_failed(), state
    assert "ErrImagePull" in state.message or "ImagePullBackOff" in state.message, f"{state.message}\n{log}"
    assert UNPULLABLE_IMAGE in state.message or "no-such-image" in state.message, state.message
    assert f"-{identifier[:8]}-worker-0" in state.message, state.message
    assert elapsed < timeout + 60, f"took {elapsed:.0f}s"
    no_worker_left(cluster, namespace, identifier)
    print(f"unpullable image: failed after {elapsed:.1f}s (timeout {timeout}s): {state.message.splitlines()[0]}")


def test_job_pod_deleted_leaves_no_worker(cluster: helpers.Cluster, namespace: str, built_env: Any) -> None:
    """The job pod force-deleted mid-run (its process gets no time to clean up): every worker pod is marked
    for deletion quickly (runner cleanup or the garbage collector via the ownerReference) and is gone
    within 60 s of that (pod teardown on this node takes 9-65 s, see notes/local-kubernetes.md)."""
    import dok.launcher

    handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": 40, "delay": 2.0},
                                  max_workers=2, worker_start_timeout=120)
    helpers.wait_for("2 running worker pods",
                     lambda: len(running_workers(cluster, namespace, handle.identifier)) == 2, timeout=120)
    job_pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{IDENTIFIER_LABEL}={handle.identifier},{COMPONENT_LABEL}=job").items
    t0 = time.monotonic()
    for pod in job_pods:
        cluster.core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)

    def all_marked() -> bool:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=worker_selector(handle.identifier)).items
        return all(p.metadata.deletion_timestamp is not None for p in pods)

    helpers.wait_for("every worker pod marked for deletion", all_marked, timeout=30, interval=0.5)
    marked = time.monotonic() - t0
    took = no_worker_left(cluster, namespace, handle.identifier, timeout=60)
    handle.cleanup()
    print(f"job pod deleted: worker pods marked for deletion after {marked:.1f}s, gone {took:.1f}s later")


# -- the Kubernetes API unreachable for a few seconds ---------------------------------------------------------
class FlakyApiProxy:
    """A TCP forwarder 127.0.0.1:<port> -> the API server (TLS passes through; the server's certificate
    names 127.0.0.1). `outage(seconds)` drops every connection and refuses new ones for that long, like an
    API server restart."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        import socket

        self.upstream = (upstream_host, upstream_port)
        self.port = _free_port()
        self.lock = threading.Lock()
        self.conns: list[Any] = []
        self.listener: Any = None
        self.refused_window = (0.0, 0.0)
        self.closed = False
        self._socket = socket
        self._listen()

    def _listen(self) -> None:
        s = self._socket.socket()
        s.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: Any) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def outage(self, seconds: float) -> None:
        self.refused_window = (time.monotonic(), time.monotonic() + seconds)
        self._stop_listening()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(self._socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        time.sleep(seconds)
        if not self.closed:
            self._listen()

    def _stop_listening(self) -> None:
        try:
            self.listener.shutdown(self._socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        except OSError:
            pass
        self.listener.close()

    def close(self) -> None:
        self.closed = True
        self._stop_listening()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_server_outage_is_survived_with_retries(cluster: helpers.Cluster, namespace: str, built_env: Any,
                                                    tmp_path: Any, caplog: Any) -> None:
    """The runner (in-process here, so its API traffic can be cut) keeps running through ~8 s of
    connection-refused from the API server: its calls retry with backoff and the flow succeeds."""
    import logging
    from urllib.parse import urlparse

    import yaml

    from dok.core import bundle
    from dok.runner import execute
    from dok.runner.monitor import RunMonitor

    api = urlparse(cluster.api_client.configuration.host)
    node_ip = api.hostname
    proxy = FlakyApiProxy(node_ip, api.port or 443)
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    kubeconfig = tmp_path / "proxied.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))

    identifier = str(uuid.uuid4())
    owner = helpers.pod_manifest(f"fake-job-{identifier[:8]}", built_env.image,
                                 ["python", "-c", "import time; time.sleep(3600)"],
                                 labels=run_labels(identifier=identifier, flow_name="e2e-faults", component="job"))
    owner["spec"]["terminationGracePeriodSeconds"] = 0
    created = cluster.core.create_namespaced_pod(namespace, owner)
    path = tmp_path / "flow.dokflow"
    info = bundle.dump(faults_flow(), path)
    n, delay = 16, 1.5
    environ = {
        "DOK_IDENTIFIER": identifier, "DOK_FLOW_NAME": "e2e-faults", "DOK_IMAGE": built_env.image,
        "DOK_NAMESPACE": namespace, "DOK_POD_NAME": created.metadata.name, "DOK_POD_UID": created.metadata.uid,
        "DOK_POD_IP": node_ip, "DOK_SCHEDULER_HOST": node_ip, "DOK_SCHEDULER_PORT": str(_free_port()),
        "DOK_MAX_WORKERS": "2", "DOK_PARAMETERS": json.dumps({"n": n, "delay": delay}),
        "DOK_WORKER_START_TIMEOUT": "120", "DOK_BUNDLE_SHA256": info.sha256,
        "DOK_TERMINATION_LOG": str(tmp_path / "termination-log"), "DOK_IMAGE_PULL_POLICY": "IfNotPresent",
    }
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    result: dict[str, Any] = {}
    caplog.set_level(logging.WARNING, logger="dok.runner.kube")
    stream = io.StringIO()

    def runner() -> None:
        result["outcome"] = execute(None, str(path), environ=environ, install_signal_handlers=False,
                                    monitor=RunMonitor(stream=stream))

    thread = threading.Thread(target=runner, daemon=True)
    try:
        thread.start()
        helpers.wait_for("2 running worker pods",
                         lambda: len(running_workers(cluster, namespace, identifier)) == 2, timeout=120)
        proxy.outage(8.0)
        thread.join(300)
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        proxy.close()
    outcome = result.get("outcome")
    assert outcome is not None, "the runner did not finish"
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert outcome.exit_code == 0 and outcome.state.is_successful(), f"{outcome.state!r}\n{retries}"
    assert [str(v) for v in (outcome.state.result or {}).values()] == [str(sum(x ** 3 for x in range(n)))]
    assert len(retries) >= 3, f"the outage was not noticed: {retries}\n{stream.getvalue()}"
    no_worker_left(cluster, namespace, identifier)
    print(f"API outage of 8s survived; {len(retries)} retried call(s), e.g. {retries[0]}")
