"""The Dask dashboard of a running flow, on a local port: `dok dashboard ID` and `dok run --dashboard`.

The scheduler in the job pod serves Dask's dashboard (bokeh) on `DASHBOARD_PORT` (run setting `dashboard`,
on by default). Nothing exposes that port outside the cluster: the caller reaches it through the API server
with `dok.kube.PortForward` (the caller's RBAC for `pods/portforward` is checked before the port opens), so
it works wherever `dok status` works.

- `dok dashboard ID [--port N]`: finds the run's running job pod (`job_pod_to_forward`, pure: a finished run,
  one not started yet or one without a job pod is a clear error, exit 2), forwards a local port (N; by
  default `DASHBOARD_PORT` when free, else any free port) and prints the URL of /status as its first stdout
  line, then keeps forwarding until Ctrl-C or until the job pod ends.
- `dok run --dashboard`: `RunDashboard` waits in a background thread for the job pod to run and the dashboard
  to answer, prints the link, and forwards for the run's duration.
"""

from __future__ import annotations

import argparse
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TextIO

from dok.core import labels as core_labels
from dok.core.exceptions import EXIT_SUCCESS
from dok.core.names import DASHBOARD_PORT
from dok.kube import KubeError, PortForward, name_of

from .exceptions import RunFinished, RunNotRunning, UsageError
from .manifests import CONTAINER_NAME

if TYPE_CHECKING:
    from .handle import RunHandle
    from .kube import Kube

STATUS_PATH = "/status"          # the dashboard's main page
HEALTH_PATH = "/health"          # answered by the scheduler's HTTP server ("ok") once it listens
# (the dashboard's pages, /status among them, are added a moment later: `dok run --dashboard` waits for /status)
POLL_INTERVAL = 2.0              # seconds between checks that the job pod still runs
READY_TIMEOUT = 120.0            # `dok run --dashboard`: how long to wait for the dashboard to answer

Obj = Mapping[str, Any]


# -- pure parts ----------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`dok dashboard`'s own arguments (the CLI adds the common ones)."""
    parser.add_argument("identifier", metavar="ID")
    parser.add_argument("--port", type=local_port, default=None, metavar="N",
                        help=f"local port (default {DASHBOARD_PORT} when free, else any free port; 0: any free port)")


def local_port(text: str) -> int:
    """argparse type of --port: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def dashboard_url(port: int, *, host: str = "127.0.0.1", path: str = STATUS_PATH) -> str:
    return f"http://{host}:{port}/{path.lstrip('/')}"


def _finished_phase(pod: Obj) -> str | None:
    """'Succeeded'/'Failed' (or the container's termination reason) once the job container ended, else None."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return str(phase)
    for c in status.get("containerStatuses") or []:
        if c.get("name") == CONTAINER_NAME and (c.get("state") or {}).get("terminated"):
            return str((c["state"]["terminated"].get("reason")) or "Terminated")
    return None


def job_pod_to_forward(job_pods: Sequence[Obj], *, identifier: str, job_phase: str | None) -> str:
    """The name of the run's job pod serving the dashboard (the newest one, Running and not being deleted).
    `job_phase`: the Job's (`handle.job_phase`), None when it is gone. Raises `RunFinished` for a run that
    ended, `RunNotRunning` for one whose job pod is not running yet (both exit 2, with a hint)."""
    pod = job_pods[-1] if job_pods else None
    if pod is None:
        if job_phase in ("Succeeded", "Failed"):
            raise _finished(identifier, job_phase)
        raise RunNotRunning(f"run {identifier} has no job pod yet: no dashboard to show",
                            hint=f"retry when `dok status {identifier}` shows the job pod Running")
    ended = _finished_phase(pod)
    if ended is not None:
        raise _finished(identifier, ended)
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        raise _finished(identifier, "being deleted")
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    if phase != "Running":
        raise RunNotRunning(f"run {identifier} is not running yet (job pod {name_of(pod)} is {phase}): "
                            "no dashboard to show yet",
                            hint=f"retry when `dok status {identifier}` shows Running (or use `dok run --dashboard`)")
    return name_of(pod)


def _finished(identifier: str, how: str) -> RunFinished:
    return RunFinished(f"run {identifier} has finished ({how}): its dashboard ended with its scheduler",
                       hint=f"`dok status {identifier}` shows its final State, `dok logs {identifier}` its log")


# -- the forward ------------------------------------------------------------------------------------------------
def open_forward(kube: Kube, *, namespace: str, pod: str, port: int | None) -> PortForward:
    """A started PortForward from 127.0.0.1:`port` to the pod's dashboard. `port=None`: DASHBOARD_PORT when it
    is free, else any free port. Raises dok.kube's Forbidden (no pods/portforward right), NotFound,
    PodNotRunning, or KubeError when the explicit local port is taken."""
    if port is None:
        try:
            return PortForward(kube, namespace=namespace, pod=pod, port=DASHBOARD_PORT,
                               local_port=DASHBOARD_PORT).start()
        except KubeError as exc:
            if not str(exc.message).startswith("cannot listen on"):
                raise
            port = 0  # 8787 is taken here (another dashboard?): any free port
    return PortForward(kube, namespace=namespace, pod=pod, port=DASHBOARD_PORT, local_port=port).start()


def pod_running(kube: Kube, namespace: str, pod: str) -> bool:
    """Is the job pod still running? API errors count as "yes" (a blip must not end the forward)."""
    try:
        obj = kube.read("Pod", namespace, pod)
    except KubeError:
        return True
    return obj is not None and _finished_phase(obj) is None and not (obj.get("metadata") or {}).get("deletionTimestamp")


def answers(url: str, *, timeout: float = 5.0) -> bool:
    """Does an HTTP GET of `url` (through the forward) succeed?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our loopback URL
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _job_phase(kube: Kube, handle: RunHandle) -> str | None:
    from .handle import job_phase

    jobs = kube.list_jobs(handle.namespace, handle.selector)
    return job_phase(jobs[0]) if jobs else None


# -- `dok dashboard ID` ----------------------------------------------------------------------------------------
def cmd_dashboard(args: argparse.Namespace, *, out: TextIO, err: TextIO, kube: Kube, namespace: str,
                  sleep: Callable[[float], None] = time.sleep) -> int:
    """Forward until Ctrl-C or the end of the run; the URL is the first stdout line."""
    from .handle import RunHandle

    handle = RunHandle.attach(args.identifier, kube=kube, namespace=namespace)  # RunNotFound (exit 2)
    job_pods, _ = handle.pods()
    pod = job_pod_to_forward(job_pods, identifier=handle.identifier, job_phase=_job_phase(kube, handle))
    forward = open_forward(kube, namespace=namespace, pod=pod, port=args.port)
    try:
        print(forward.url(STATUS_PATH), file=out, flush=True)
        print(f"[dok] forwarding 127.0.0.1:{forward.local_port} to port {DASHBOARD_PORT} of job pod {pod} "
              f"(namespace {namespace}) through the API server; Ctrl-C to stop", file=err, flush=True)
        try:
            while pod_running(kube, namespace, pod):
                sleep(POLL_INTERVAL)
        except KeyboardInterrupt:
            print("[dok] dashboard forward stopped", file=err, flush=True)
            return EXIT_SUCCESS
        print(f"[dok] run {handle.identifier} has finished: its dashboard is gone", file=err, flush=True)
        return EXIT_SUCCESS
    finally:
        forward.close()


# -- `dok run --dashboard` -------------------------------------------------------------------------------------
class RunDashboard:
    """Forwards the dashboard of a run while `dok run` waits for it (a background thread): waits for the job
    pod to run and the dashboard to answer, then says the link; a problem is a warning, never the run's end."""

    def __init__(self, *, kube: Kube, namespace: str, identifier: str, say: Callable[[str], None],
                 port: int | None = None, ready_timeout: float = READY_TIMEOUT, interval: float = 1.0) -> None:
        self.kube, self.namespace, self.identifier, self.say = kube, namespace, identifier, say
        self.port, self.ready_timeout, self.interval = port, ready_timeout, interval
        self.url: str | None = None
        self.forward: PortForward | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dok-dashboard", daemon=True)

    def start(self) -> RunDashboard:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.forward is not None:
            self.forward.close()

    def _job_pod(self) -> str | None:
        selector = f"{core_labels.identifier_selector(self.identifier)},{core_labels.COMPONENT_LABEL}=job"
        pods = self.kube.list_pods(self.namespace, selector)
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
                   and not (p.get("metadata") or {}).get("deletionTimestamp")]
        return name_of(running[-1]) if running else None

    def _run(self) -> None:
        try:
            pod = None
            while pod is None and not self._stop.is_set():
                with suppress(KubeError):
                    pod = self._job_pod()
                if pod is None:
                    self._stop.wait(self.interval)
            if pod is None:
                return
            self.forward = open_forward(self.kube, namespace=self.namespace, pod=pod, port=self.port)
            deadline = time.monotonic() + self.ready_timeout
            while not self._stop.is_set() and not answers(self.forward.url(STATUS_PATH)):
                if time.monotonic() > deadline:
                    self.say(f"warning: the dashboard did not answer within {self.ready_timeout:.0f}s "
                             f"(still forwarding {self.forward.url(STATUS_PATH)})")
                    return
                self._stop.wait(self.interval)
            if not self._stop.is_set():
                self.url = self.forward.url(STATUS_PATH)
                self.say(f"dashboard: {self.url} (while the run goes)")
        except Exception as exc:  # noqa: BLE001 - the dashboard is a bonus: the run goes on without it
            hint = getattr(exc, "hint", None)
            self.say(f"warning: no dashboard: {getattr(exc, 'message', None) or exc}" + (f" ({hint})" if hint else ""))


@contextmanager
def dashboard_during_run(handle: RunHandle, *, enabled: bool, say: Callable[[str], None],
                         port: int | None = None) -> Iterator[RunDashboard | None]:
    """`dok run --dashboard`: the dashboard forwarded while the body (waiting for the run) goes."""
    if not enabled:
        yield None
        return
    dashboard = RunDashboard(kube=handle.kube, namespace=handle.namespace, identifier=handle.identifier,
                             say=say, port=port).start()
    try:
        yield dashboard
    finally:
        dashboard.stop()


def check_run_options(*, dashboard: bool, detach: bool, local: bool) -> None:
    """`dok run --dashboard` forwards while it waits for a cluster run: not with --detach or --local."""
    if dashboard and detach:
        raise UsageError("--dashboard needs to wait for the run; it cannot be used with --detach",
                         hint="run `dok dashboard ID` for a detached run")
    if dashboard and local:
        raise UsageError("--dashboard forwards a cluster run's dashboard; --local runs have none to forward",
                         hint="drop --dashboard (or --local)")
