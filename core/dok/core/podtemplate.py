"""Pod templates: a user's pod (or pod spec) merged into the pod dok writes, with dok's parts protected.

    template = pod_template({"metadata": {"labels": {"team": "ml"}},
                             "spec": {"containers": [{"name": "worker", "env": [{"name": "A", "value": "1"}]}]}},
                            setting="worker_template")
    pod = merge_pod_template(dok_pod, template, container="worker", setting="worker_template")

A template is a Pod (`metadata` + `spec`), a PodTemplate's `template`, or a bare pod spec, as a dict or as
YAML text (`pod_template` normalises it to `{"metadata": {...}, "spec": {...}}`; reading a file is the
caller's job: the launcher reads `--worker-template FILE`). The merge rules (`merge_pod_template`):

- dok owns: the pod's `metadata` other than `labels`/`annotations` (name, namespace, ownerReferences, ...),
  its container's `name`, `image`, `command` and `args`, and the labels/annotations it sets (a template may
  add others, not change dok's). Setting an owned field is an error naming it.
- Everything else merges: objects key by key, lists of named objects (containers, env, volumes,
  volumeMounts, ports) by name, other lists (tolerations, ...) are concatenated without duplicates, and a
  value dok already set (a run setting, a default) must not be changed: a conflict is an error naming the
  path and both values (set the value through the run setting instead, e.g. `--worker-resources`).
- The container named like dok's (or the template's single unnamed container) merges into dok's container;
  other containers are added as sidecars.
- Security context: a template may add fields, not change dok's restricted values, unless its metadata
  carries the annotation `dok.dev/security-context: template` (`LOOSEN_ANNOTATION`): then the template's
  `securityContext` values win and the caller skips its Pod Security "restricted" check.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .exceptions import EnvironmentConfigError

__all__ = ["LOOSEN_ANNOTATION", "PodTemplateError", "loosened", "merge_pod_template", "pod_template"]

LOOSEN_ANNOTATION = "dok.dev/security-context"
_OWNED_CONTAINER_FIELDS = ("image", "command", "args")
_METADATA_ALLOWED = ("labels", "annotations")
_SPEC_HINT = "see README 'Pod templates' for what dok owns"


class PodTemplateError(EnvironmentConfigError):
    """A pod template that is not a pod, or that changes what dok owns (the message names the field)."""


def pod_template(value: Any, *, setting: str) -> dict[str, Any]:
    """`value` (a dict or YAML text: a Pod, a PodTemplate or a pod spec) as `{"metadata": ..., "spec": ...}`."""
    if isinstance(value, str):
        import yaml  # PyYAML: only templates given as text need it

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise PodTemplateError(f"{setting}: not valid YAML ({str(exc).splitlines()[0]})",
                                   hint="give a pod spec as a YAML mapping, or a file path") from None
    if not isinstance(value, Mapping):
        raise PodTemplateError(f"{setting}: must be a pod, a pod template or a pod spec (a mapping), "
                               f"got {type(value).__name__}", hint=_SPEC_HINT)
    data = copy.deepcopy(dict(value))
    if data.get("kind") == "PodTemplate" or ("template" in data and "spec" not in data):
        data = dict(data.get("template") or {})
    if "spec" in data or "metadata" in data:
        extra = sorted(set(data) - {"apiVersion", "kind", "metadata", "spec"})
        if extra:
            raise PodTemplateError(f"{setting}: unknown top-level field(s) {', '.join(extra)}",
                                   hint="a template is a Pod (metadata, spec) or a bare pod spec")
        metadata, spec = dict(data.get("metadata") or {}), dict(data.get("spec") or {})
    else:
        data.pop("apiVersion", None)
        data.pop("kind", None)
        metadata, spec = {}, data
    owned = sorted(set(metadata) - set(_METADATA_ALLOWED))
    if owned:
        raise PodTemplateError(f"{setting}: metadata.{owned[0]} is set by dok (a template may only add labels "
                               "and annotations)", hint=f"remove metadata.{owned[0]} from the template")
    for key in _METADATA_ALLOWED:
        entries = metadata.get(key)
        if entries is not None and (not isinstance(entries, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in entries.items())):
            raise PodTemplateError(f"{setting}: metadata.{key} must map strings to strings, got {entries!r}",
                                   hint='quote values in YAML: "true", "1"')
    for key in ("containers", "initContainers", "volumes", "tolerations"):
        if key in spec and not isinstance(spec[key], list):
            raise PodTemplateError(f"{setting}: spec.{key} must be a list, got {spec[key]!r}")
    return {"metadata": {k: dict(metadata[k]) for k in _METADATA_ALLOWED if metadata.get(k)}, "spec": spec}


def loosened(template: Mapping[str, Any] | None) -> bool:
    """True when the template takes over the security context (`LOOSEN_ANNOTATION: template`)."""
    annotations = ((template or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(LOOSEN_ANNOTATION) == "template"


def merge_pod_template(pod: Mapping[str, Any], template: Mapping[str, Any] | None, *, container: str,
                       setting: str) -> dict[str, Any]:
    """`pod` (dok's: `metadata` + `spec`) with `template` (normalised by `pod_template`) merged in, following
    the module's rules; a new dict. Raises PodTemplateError naming the first conflict."""
    out = copy.deepcopy(dict(pod))
    if not template:
        return out
    loose = loosened(template)
    meta = out.setdefault("metadata", {})
    for key in _METADATA_ALLOWED:
        extra = (template.get("metadata") or {}).get(key) or {}
        if extra:
            meta[key] = _merge(meta.get(key) or {}, extra, f"metadata.{key}", setting, loose=False)
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    containers = spec.pop("containers", None) or []
    ours, sidecars = _split_containers(containers, container, setting)
    merged_spec = _merge(out.get("spec") or {}, spec, "spec", setting, loose=loose)
    if ours is not None:
        for key in ("name", *_OWNED_CONTAINER_FIELDS):
            if key in ours and not (key == "name" and ours[key] == container):
                raise PodTemplateError(f"{setting}: spec.containers[{container}].{key} is set by dok",
                                       hint=f"remove {key} from the template's {container!r} container (dok runs "
                                            "its own command in its image; add a sidecar container instead)")
        dok_containers = merged_spec["containers"]
        index = next(i for i, c in enumerate(dok_containers) if c.get("name") == container)
        dok_containers[index] = _merge(dok_containers[index], {k: v for k, v in ours.items() if k != "name"},
                                       f"spec.containers[{container}]", setting, loose=loose)
    for sidecar in sidecars:
        if any(c.get("name") == sidecar.get("name") for c in merged_spec["containers"]):
            raise PodTemplateError(f"{setting}: two containers named {sidecar.get('name')!r}")
        merged_spec["containers"].append(sidecar)
    out["spec"] = merged_spec
    return out


def _split_containers(containers: list[Any], name: str, setting: str) -> tuple[dict[str, Any] | None,
                                                                               list[dict[str, Any]]]:
    if not all(isinstance(c, Mapping) for c in containers):
        raise PodTemplateError(f"{setting}: spec.containers must be a list of containers")
    ours = [c for c in containers if c.get("name") in (name, None)]
    if len(ours) > 1:
        raise PodTemplateError(f"{setting}: {len(ours)} containers would merge into dok's {name!r} container",
                               hint=f"give one container named {name!r} (or unnamed); name the sidecars")
    sidecars = [dict(c) for c in containers if c.get("name") not in (name, None)]
    for sidecar in sidecars:
        missing = [k for k in ("name", "image") if not sidecar.get(k)]
        if missing:
            raise PodTemplateError(f"{setting}: sidecar container {sidecar.get('name')!r} needs {missing[0]}")
    return (dict(ours[0]) if ours else None), sidecars


def _merge(base: Any, extra: Any, path: str, setting: str, *, loose: bool) -> Any:
    if isinstance(base, Mapping) and isinstance(extra, Mapping):
        out = dict(base)
        for key, value in extra.items():
            sub = f"{path}.{key}"
            if key not in out:
                out[key] = copy.deepcopy(value)
            elif loose and key == "securityContext" and isinstance(value, Mapping):
                out[key] = {**dict(out[key]), **copy.deepcopy(dict(value))}
            else:
                out[key] = _merge(out[key], value, sub, setting, loose=loose)
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return _merge_lists(base, extra, path, setting, loose=loose)
    if base == extra:
        return base
    raise PodTemplateError(
        f"{setting}: {path} is {base!r} in dok's pod and {extra!r} in the template",
        hint=_conflict_hint(path))


def _merge_lists(base: list[Any], extra: list[Any], path: str, setting: str, *, loose: bool) -> list[Any]:
    named = all(isinstance(x, Mapping) and "name" in x for x in [*base, *extra])
    out = [copy.deepcopy(x) for x in base]
    for item in extra:
        if named:
            at = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if at is not None:
                out[at] = _merge(out[at], item, f"{path}[{item['name']}]", setting, loose=loose)
                continue
        if item not in out:
            out.append(copy.deepcopy(item))
    return out


def _conflict_hint(path: str) -> str:
    if ".resources." in path:
        return "set resources with the run setting (worker_resources/resources, --worker-resources/--job-resources)"
    if "securityContext" in path:
        return (f"dok's pods are Pod Security 'restricted'; to change that on purpose annotate the template "
                f"with {LOOSEN_ANNOTATION}: template")
    if path.startswith("metadata."):
        return "dok's own labels and annotations cannot be changed; use another key"
    return "remove it from the template, or set it through the matching run setting"
