"""Reading pods: `pod_snapshot(pod, container=…, events=…)` turns a pod's API JSON (camelCase, as every
`dok.kube` call returns it) and, optionally, its events into a typed `PodSnapshot`.

The snapshot says what the pod is doing — phase, whether it is being deleted, the main container's
waiting/terminated reason, message and exit code, an image that cannot be pulled, a scheduler that cannot
place it — so that policies decide from it without reading API JSON: the runner's `HealthPolicy` (worker
pods) and the launcher's job-pod watch. Pure functions; no API calls.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                                "RegistryUnavailable"})
CONTAINER_CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("name") or "?")


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return metadata(obj).get("labels") or {}


def created_text(obj: Mapping[str, Any]) -> str | None:
    """The object's creationTimestamp as the CLI shows it ("2026-01-02 03:04:05+00:00"), or None."""
    value = metadata(obj).get("creationTimestamp")
    if not value:
        return None
    try:
        return str(_dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return str(value)


@dataclass(frozen=True, kw_only=True)
class ContainerSnapshot:
    """One container's state: running, waiting (with a reason) or terminated (with an exit code)."""

    name: str
    image: str | None = None
    running: bool = False
    waiting_reason: str | None = None
    waiting_message: str = ""
    terminated_reason: str | None = None
    terminated_message: str = ""
    terminated: bool = False
    exit_code: int | None = None
    signal: int | None = None


@dataclass(frozen=True, kw_only=True)
class PodSnapshot:
    """What one look at a pod (and its events) tells."""

    name: str
    uid: str | None
    phase: str                          # Pending, Running, Succeeded, Failed, Unknown
    deleting: bool
    labels: Mapping[str, str]
    created: str | None                 # creationTimestamp as the API wrote it (sorts by time)
    reason: str | None = None           # the pod's own status reason (Evicted, …)
    message: str = ""
    container: ContainerSnapshot | None = None  # the container asked for (else the first)
    image: str | None = None            # the spec's image of that container
    unschedulable_reason: str | None = None  # set while PodScheduled=False ("Unschedulable", …)
    unschedulable_message: str = ""     # the scheduler's text then
    failed_event: str = ""              # the kubelet's last "Failed" event (the registry's error for pulls)
    warnings: tuple[str, ...] = ()      # "reason: message" of its Warning events, oldest first
    containers_ran: bool = False        # some container runs, ran, or terminated before
    disruption_reason: str | None = None  # the DisruptionTarget condition's reason (PreemptionByScheduler, …)
    disruption_message: str = ""

    @property
    def waiting_reason(self) -> str | None:
        return self.container.waiting_reason if self.container else None

    @property
    def image_pull_error(self) -> bool:
        return self.waiting_reason in IMAGE_PULL_REASONS

    @property
    def container_config_error(self) -> bool:
        return self.waiting_reason in CONTAINER_CONFIG_REASONS

    @property
    def never_started(self) -> bool:
        """Pending with no container that ever ran: nothing to stop, safe to delete without a grace period."""
        return self.phase == "Pending" and not self.containers_ran


def _container(status: Mapping[str, Any], spec: Mapping[str, Any], wanted: str | None) -> ContainerSnapshot | None:
    statuses = status.get("containerStatuses") or []
    cs = next((c for c in statuses if c.get("name") == wanted), statuses[0] if statuses else None)
    if cs is None:
        return None
    state = cs.get("state") or {}
    waiting, terminated = state.get("waiting"), state.get("terminated")
    spec_image = next((c.get("image") for c in spec.get("containers") or [] if c.get("name") == cs.get("name")), None)
    return ContainerSnapshot(
        name=str(cs.get("name") or "?"), image=spec_image or cs.get("image"),
        running=state.get("running") is not None,
        waiting_reason=(waiting or {}).get("reason"), waiting_message=((waiting or {}).get("message") or "").strip(),
        terminated=bool(terminated), terminated_reason=(terminated or {}).get("reason"),
        terminated_message=((terminated or {}).get("message") or "").strip(),
        exit_code=(terminated or {}).get("exitCode"), signal=(terminated or {}).get("signal"))


def _event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")


def pod_snapshot(pod: Mapping[str, Any], *, container: str | None = None,
                 events: Sequence[Mapping[str, Any]] = ()) -> PodSnapshot:
    """Classify one pod; `container` names the main container (default: the first), `events` its events."""
    meta, status, spec = metadata(pod), pod.get("status") or {}, pod.get("spec") or {}
    main = _container(status, spec, container)
    image = main.image if main else None
    if image is None:
        image = next((c.get("image") for c in spec.get("containers") or []), None)
    unschedulable_reason, unschedulable_message = None, ""
    disruption_reason, disruption_message = None, ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            disruption_reason = cond.get("reason") or "DisruptionTarget"
            disruption_message = (cond.get("message") or "").strip()
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            unschedulable_reason = cond.get("reason") or "Unschedulable"
            unschedulable_message = (cond.get("message") or "").strip()
    ran = False
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        ran = ran or "running" in state or "terminated" in state or bool((cs.get("lastState") or {}).get("terminated"))
    ordered = sorted(events, key=_event_time)
    failed = [e for e in ordered if e.get("reason") == "Failed" and e.get("message")]
    warnings = tuple(f"{e.get('reason', '?')}: {(e.get('message') or '').strip()}"
                     for e in ordered if e.get("type") == "Warning")
    return PodSnapshot(
        name=str(meta.get("name") or "?"), uid=meta.get("uid"), phase=str(status.get("phase") or "Pending"),
        deleting=bool(meta.get("deletionTimestamp")), labels=dict(meta.get("labels") or {}),
        created=meta.get("creationTimestamp"), reason=status.get("reason"),
        message=(status.get("message") or "").strip(), container=main, image=image,
        unschedulable_reason=unschedulable_reason, unschedulable_message=unschedulable_message,
        failed_event=str(failed[-1].get("message")).strip() if failed else "", warnings=warnings,
        containers_ran=ran, disruption_reason=disruption_reason, disruption_message=disruption_message)
