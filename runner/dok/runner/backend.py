"""How workers are obtained: the `WorkerBackend` seam, and `PodWorkerBackend` (one bare pod per worker).

The cluster (`dok.runner.cluster`) only knows this protocol: `create(name, scheduler_address)` starts a Dask
worker that registers under `name`, `delete(name)` stops it, `observe()` reports every worker of this run
(`dok.runner.health.WorkerObservation`), `cleanup()` deletes whatever is left. Another backend (e.g. one that
drives the dask-kubernetes operator's DaskWorkerGroup, or local processes in tests) slots in by implementing
the same six methods. All methods are coroutines and must not block the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Protocol, runtime_checkable

from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL
from dok.core.podtemplate import PodTemplateError, loosened
from dok.kube import Kube, RetryPolicy, labels_of, name_of, pod_snapshot
from dok.kube import retry as kube_retry
from dok.runner.config import RunnerConfig
from dok.runner.exceptions import ConfigError, Conflict, JobRetried, KubernetesError
from dok.runner.health import WorkerObservation, observe_pod
from dok.runner.manifests import (
    WORKER_COMPONENT,
    JobPodTemplate,
    job_pod_template,
    WorkerPodSettings,
    check_worker_pod,
    worker_pod_manifest,
    worker_pod_name,
)

WORKER_LOG_LINES = 2000  # lines of a worker's log copied into the job pod's log before it is deleted


@runtime_checkable
class WorkerBackend(Protocol):
    """Creates and deletes the processes behind Dask workers; see the module docstring."""

    description: str

    async def prepare(self) -> None:
        """Once, before the first worker: read whatever the backend derives workers from."""

    def new_name(self) -> str:
        """A fresh, never reused worker name (also the Dask worker name)."""

    async def create(self, name: str, scheduler_address: str) -> None:
        """Ask for a worker; return once the request is accepted (not when the worker runs)."""

    async def delete(self, name: str) -> bool:
        """Stop a worker; False if it was already gone."""

    async def observe(self) -> list[WorkerObservation]:
        """Every worker of this run that still exists, classified."""

    async def diagnostics(self, name: str, *, log: bool = True) -> str:
        """Best-effort text about a failing worker (its warning events, the tail of its log if `log`)."""

    async def worker_log(self, name: str) -> str:
        """Best-effort: the worker's log (its last `WORKER_LOG_LINES` lines), '' when it cannot be read."""

    async def cleanup(self) -> list[str]:
        """Delete every worker of this run that still exists (idempotent); returns the names deleted."""


class PodWorkerBackend:
    """One Kubernetes pod per Dask worker (or per `worker_processes` workers: `processes`), derived from the job
    pod's own spec (read once). Names are pod names; a pod's Dask workers are `<pod>/<i>` then."""

    description = "Kubernetes pods"

    def __init__(self, *, config: RunnerConfig, kube: Kube, delete_grace_seconds: int = 1) -> None:
        self.config = config
        self.kube = kube
        self.delete_grace_seconds = delete_grace_seconds
        self.template: JobPodTemplate | None = None
        self.template_warning: str | None = None
        self.worker_resources: dict[str, float] | None = None  # Dask resources of every worker (prepare)
        self._numbers = itertools.count()
        self._pending: set[str] = set()  # workers last seen Pending: no process to stop, delete at once
        self._prestarted: list[str] = []  # pods created before the cluster asked (see prestart)
        self.selector = f"{IDENTIFIER_LABEL}={config.spec.identifier},{COMPONENT_LABEL}={WORKER_COMPONENT}"
        self.processes = config.spec.worker_processes  # Dask workers per pod (the cluster's worker "group")

    async def prepare(self) -> None:
        pod = await asyncio.to_thread(self.kube.read, "Pod", self.config.namespace, self.config.pod_name)
        if pod is None:
            raise KubernetesError(f"the job pod {self.config.namespace}/{self.config.pod_name} (DOK_POD_NAME) "
                                  "does not exist", hint="DOK_POD_NAME must be the runner's own pod name "
                                                         "(downward API metadata.name)") from None
        self.template = job_pod_template(pod, owner_name=self.config.pod_name, owner_uid=self.config.pod_uid)
        try:  # the worker template and settings are checked once, before any pod is asked for
            probe = self.manifest(worker_pod_name(flow_name=self.config.spec.flow_name,
                                                  identifier=self.config.spec.identifier, number=0),
                                  self.config.scheduler_address)
        except PodTemplateError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
        self.worker_resources = check_worker_pod(probe, loose=loosened(self.config.spec.worker_template),
                                                 processes=self.config.spec.worker_processes)
        await self._refuse_job_retry(pod)

    async def _refuse_job_retry(self, pod: dict) -> None:
        """Fail if the Job already created another pod for this run (the first one was deleted or lost)."""
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        job = next((o.get("name") for o in owners if o.get("kind") == "Job"), None)
        if not job:
            return
        events = await asyncio.to_thread(self._events, job, "Job")
        earlier = previous_job_pods(events, own_pod=self.config.pod_name)
        if earlier:
            raise JobRetried(f"job pod {self.config.pod_name} replaces {', '.join(earlier)} of the same run "
                             f"(Job {job}): the earlier pod was lost, so the run is not started again",
                             hint=f"see what happened to it (`dok status {self.config.spec.identifier}`) and start "
                                  "a new run")

    def new_name(self) -> str:
        if self._prestarted:
            return self._prestarted.pop(0)
        return worker_pod_name(flow_name=self.config.spec.flow_name, identifier=self.config.spec.identifier,
                               number=next(self._numbers))

    async def prestart(self, scheduler_address: str) -> str:
        """Create the first worker pod before the scheduler is even up (it retries connecting until then), so
        pod start-up overlaps the runner's own. The cluster adopts it: the next `new_name()` returns it, and
        `create()` of an existing live pod of this run is a no-op. Unadopted, the final cleanup deletes it."""
        name = worker_pod_name(flow_name=self.config.spec.flow_name, identifier=self.config.spec.identifier,
                               number=next(self._numbers))
        await self.create(name, scheduler_address)
        self._prestarted.append(name)
        return name

    def manifest(self, name: str, scheduler_address: str) -> dict:
        assert self.template is not None, "prepare() first"
        c = self.config
        return worker_pod_manifest(
            name=name, namespace=c.namespace, image=c.image, scheduler_address=scheduler_address,
            identifier=c.spec.identifier, flow_name=c.spec.flow_name, template=self.template, nthreads=c.nthreads,
            death_timeout=c.spec.worker_death_timeout, resources=c.spec.worker_resources,
            image_pull_policy=c.spec.image_pull_policy, pod=WorkerPodSettings.of(c.spec),
            processes=c.spec.worker_processes)

    async def create(self, name: str, scheduler_address: str) -> None:
        if self.template is None:
            await self.prepare()
        manifest = self.manifest(name, scheduler_address)
        try:
            await kube_retry.acall(lambda: self._create_once(manifest), policy=CONFLICT_RETRY,
                                   retry_on=lambda exc: isinstance(exc, _OldPodInTheWay))
        except _OldPodInTheWay as exc:
            raise exc.conflict from None

    async def _create_once(self, manifest: dict[str, Any]) -> None:
        """Create the pod; a 409 is success when the pod is ours and alive (a retried request landed), and
        worth another try (`_OldPodInTheWay`) when an old pod of ours with that name is still terminating."""
        name = manifest["metadata"]["name"]
        try:
            await asyncio.to_thread(self.kube.create, manifest)
            return
        except Conflict as conflict:
            existing = await asyncio.to_thread(self.kube.read, "Pod", self.config.namespace, name)
            if existing is None:
                raise _OldPodInTheWay(conflict) from None  # gone meanwhile: create again
            if labels_of(existing).get(IDENTIFIER_LABEL) != self.config.spec.identifier:
                raise
            if not pod_snapshot(existing).deleting:
                return
            raise _OldPodInTheWay(conflict) from None

    async def delete(self, name: str) -> bool:
        """Delete with a short grace period; a pod that never started (Pending: image pull, unschedulable)
        has nothing to stop, so it goes at once (grace 0) instead of lingering as Terminating."""
        grace = 0 if name in self._pending else self.delete_grace_seconds
        return await asyncio.to_thread(self.kube.delete_pod, self.config.namespace, name, grace_period_seconds=grace)

    async def observe(self) -> list[WorkerObservation]:
        pods = await asyncio.to_thread(self._list)
        observations = [observe_pod(p) for p in pods]
        self._pending = {name_of(p) for p in pods if pod_snapshot(p).never_started}
        return observations

    async def diagnostics(self, name: str, *, log: bool = True) -> str:
        events = await asyncio.to_thread(self._events, name, "Pod")
        parts = warning_events_text(events)
        if log:
            tail = (await asyncio.to_thread(self._log_tail, name)).strip()
            if tail:
                parts.append("--- last lines of its log ---\n" + tail)
        return "\n".join(parts)

    # -- the API calls (blocking; called through asyncio.to_thread) ---------------------------------------------
    def _list(self) -> list[dict[str, Any]]:
        return self.kube.list_pods(self.config.namespace, self.selector)

    def _events(self, name: str, kind: str) -> list[dict[str, Any]]:
        """Events about one object (best effort: one short attempt, [] if they cannot be read)."""
        try:
            return self.kube.events(self.config.namespace, name, kind=kind, quick=True)
        except Exception:  # noqa: BLE001 - diagnostics only
            return []

    async def worker_log(self, name: str) -> str:
        return await asyncio.to_thread(self.kube.pod_log, self.config.namespace, name, tail_lines=WORKER_LOG_LINES,
                                       quick=True)

    def _log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines of a pod's log, or '' if it cannot be read (best effort)."""
        try:
            return self.kube.pod_log(self.config.namespace, name, tail_lines=lines, quick=True)
        except Exception:  # noqa: BLE001 - diagnostics only
            return ""

    async def cleanup(self) -> list[str]:
        """Delete every worker pod of this run still there. Pods that never started are deleted with grace 0
        (also when already Terminating: shortening the grace period is allowed)."""
        pods = await asyncio.to_thread(self._list)
        deleted = []
        for pod in map(pod_snapshot, pods):
            if pod.deleting and not pod.never_started:
                continue
            grace = 0 if pod.never_started else self.delete_grace_seconds
            if await asyncio.to_thread(self.kube.delete_pod, self.config.namespace, pod.name,
                                       grace_period_seconds=grace):
                deleted.append(pod.name)
        return deleted

    async def remaining(self) -> list[str]:
        """Names of this run's worker pods that still exist (Terminating included)."""
        pods = await asyncio.to_thread(self._list)
        return [name_of(p) for p in pods]


# An old pod of this run with the wanted name is still terminating: try again every second for a minute.
CONFLICT_RETRY = RetryPolicy(initial=1.0, maximum=1.0, budget=60.0, jitter=0.0)


class _OldPodInTheWay(Exception):
    def __init__(self, conflict: Conflict) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict


def warning_events_text(events: list[dict], *, limit: int = 3) -> list[str]:
    """The last `limit` distinct Warning events of a pod as 'event <reason>: <message>' lines."""
    def when(e: dict) -> str:
        return e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""

    lines: list[str] = []
    for event in sorted((e for e in events if e.get("type") == "Warning"), key=when, reverse=True):
        line = f"event {event.get('reason', '?')}: {(event.get('message') or '').strip()[:400]}"
        if line not in lines:
            lines.append(line)
        if len(lines) == limit:
            break
    return list(reversed(lines))


def previous_job_pods(job_events: list[dict], *, own_pod: str) -> list[str]:
    """Names of pods the Job created before this one, from its `SuccessfulCreate` events ("Created pod: X")."""
    names = []
    for event in job_events:
        message = event.get("message") or ""
        if event.get("reason") == "SuccessfulCreate" and message.startswith("Created pod: "):
            name = message[len("Created pod: "):].strip()
            if name and name != own_pod and name not in names:
                names.append(name)
    return names
