"""`dok run`'s pod flags, parsed into run settings (pure functions; the RunSpec checks the values).

    parse_resources("cpu=500m,memory=1Gi,nvidia.com/gpu=1")
        == {"requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"},
            "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}}
    parse_toleration("spot=true:NoSchedule")
        == {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}

Resources: each `NAME=QUANTITY` is a request; memory and extended resources (GPUs, anything but cpu and
ephemeral-storage) are also the limit (Kubernetes needs a limit for extended resources; the memory limit
is what Dask's memory limit follows); no CPU limit (it would throttle Dask threads on an idle node).
`requests.NAME=Q` / `limits.NAME=Q` set one side only.

Placement flags apply to the job pod and the workers; the `--job-…` / `--worker-…` variants to one of them
(`pod_settings` returns RunSpec settings: `node_selector`, `worker_node_selector`, ...). A flag replaces the
environment's value of the setting it sets.
"""

from __future__ import annotations

import argparse
from typing import Any

from .exceptions import UsageError

__all__ = ["EFFECTS", "add_arguments", "parse_key_values", "parse_resources", "parse_toleration", "pod_settings"]

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_REQUEST_ONLY = ("cpu", "ephemeral-storage")
_RESOURCES_HINT = "e.g. --worker-resources cpu=500m,memory=1Gi,nvidia.com/gpu=1 (requests.X=Q / limits.X=Q for one side)"


def parse_resources(text: str, *, flag: str = "--worker-resources") -> dict[str, dict[str, str]]:
    """`cpu=500m,memory=1Gi[,nvidia.com/gpu=1]` as a container's requests/limits (see the module docstring)."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UsageError(f"{flag} {text!r}: {item!r} is not NAME=QUANTITY", hint=_RESOURCES_HINT)
        side, dot, rest = name.partition(".")
        if dot and side in ("requests", "limits") and rest:
            (requests if side == "requests" else limits)[rest] = value
            continue
        requests[name] = value
        if name not in _REQUEST_ONLY:
            limits[name] = value
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def parse_key_values(items: list[str], *, flag: str) -> dict[str, str]:
    """Repeated `KEY=VALUE` flags as a dict (a key given twice: the last wins)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {item!r} is not KEY=VALUE", hint=f"e.g. {flag} kubernetes.io/arch=amd64")
        out[key.strip()] = value.strip()
    return out


def parse_toleration(text: str, *, flag: str = "--toleration") -> dict[str, str]:
    """`KEY[=VALUE]:EFFECT` as a Kubernetes toleration (operator Equal with a value, else Exists)."""
    head, sep, effect = text.rpartition(":")
    key, has_value, value = head.partition("=")
    if not sep or not key.strip() or effect not in EFFECTS or (has_value and not value):
        raise UsageError(f"{flag} {text!r} is not KEY[=VALUE]:EFFECT",
                         hint=f"EFFECT is one of {', '.join(EFFECTS)}, e.g. {flag} spot=true:NoSchedule")
    toleration = {"key": key.strip(), "operator": "Equal" if has_value else "Exists", "effect": effect}
    if has_value:
        toleration["value"] = value.strip()
    return toleration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The pod flags of `dok run`."""
    g = parser.add_argument_group("pods", "resources, placement and templates of the job pod and worker pods")
    g.add_argument("--worker-resources", metavar="NAME=Q,...", help="worker container resources, e.g. "
                   "cpu=500m,memory=1Gi,nvidia.com/gpu=1 (threads, Dask memory limit and GPU follow them)")
    g.add_argument("--job-resources", metavar="NAME=Q,...", help="job pod (scheduler) container resources")
    for flag, what in (("", "job pod and workers"), ("job-", "job pod only"), ("worker-", "workers only")):
        g.add_argument(f"--{flag}node-selector", action="append", default=[], metavar="KEY=VALUE",
                       help=f"node label the {what} must match; repeatable")
        g.add_argument(f"--{flag}toleration", action="append", default=[], metavar="KEY[=VALUE]:EFFECT",
                       help=f"taint the {what} tolerate; repeatable")
    g.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="pod label; repeatable")
    g.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE", help="pod annotation; repeatable")
    g.add_argument("--priority-class", metavar="NAME", help="PriorityClass of the job and worker pods")
    g.add_argument("--service-account", metavar="NAME", help="the job pod's ServiceAccount (default dok-runner; "
                   "checked for the rights the runner needs)")
    g.add_argument("--worker-template", metavar="FILE", help="YAML pod (spec) merged into each worker pod")
    g.add_argument("--job-template", metavar="FILE", help="YAML pod (spec) merged into the job pod")


def pod_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings (RunSpec names) the pod flags give; settings without a flag are left out."""
    out: dict[str, Any] = {}
    get = lambda name: getattr(args, name, None)  # noqa: E731
    if get("worker_resources"):
        out["worker_resources"] = parse_resources(args.worker_resources, flag="--worker-resources")
    if get("job_resources"):
        out["resources"] = parse_resources(args.job_resources, flag="--job-resources")
    both = parse_key_values(get("node_selector") or [], flag="--node-selector")
    job = parse_key_values(get("job_node_selector") or [], flag="--job-node-selector")
    workers = parse_key_values(get("worker_node_selector") or [], flag="--worker-node-selector")
    if both or job:
        out["node_selector"] = {**both, **job}
    if both or workers:
        out["worker_node_selector"] = {**both, **workers}
    both_t = [parse_toleration(t) for t in get("toleration") or []]
    job_t = [parse_toleration(t, flag="--job-toleration") for t in get("job_toleration") or []]
    workers_t = [parse_toleration(t, flag="--worker-toleration") for t in get("worker_toleration") or []]
    if both_t or job_t:
        out["tolerations"] = both_t + job_t
    if both_t or workers_t:
        out["worker_tolerations"] = both_t + workers_t
    if get("label"):
        out["labels"] = parse_key_values(args.label, flag="--label")
    if get("annotation"):
        out["annotations"] = parse_key_values(args.annotation, flag="--annotation")
    if get("priority_class"):
        out["priority_class"] = args.priority_class
    if get("service_account"):
        out["service_account_name"] = args.service_account
    if get("worker_template"):
        out["worker_template"] = args.worker_template
    if get("job_template"):
        out["job_template"] = args.job_template
    return out
