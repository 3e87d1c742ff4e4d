"""`setup(env)`: make a namespace ready for dok runs, or say precisely what is missing.

1. The API server is reachable and the namespace exists.
2. The caller may do what `dok` does (SelfSubjectAccessReview): create/get/list/delete Jobs; get/list/
   delete pods; get pods/log. Missing ones are listed together in one PermissionDenied.
3. The runner's least-privilege ServiceAccount, Role and RoleBinding (`dok-runner`) exist: created when
   missing; when present, the Role's rules are checked against what the runner needs (impersonation-free:
   we read the Role and the RoleBinding rather than act as the service account) and a dok-managed Role is
   repaired; a foreign one that lacks rules is reported by name.
4. A run with its own `service_account` (not dok-runner: `check_service_account`) is checked before launch:
   the ServiceAccount exists, and a SubjectAccessReview per rule the runner needs (`runner_rules(backend)`: create/
   get/list/watch/delete pods, get pods/log, list/watch events) says it has them. When the caller may not
   create SubjectAccessReviews, the rights are not checked and a warning says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dok.core import labels as core_labels
from dok.kube import Conflict, Forbidden, labels_of
from dok.kube import retry as kube_retry

from .exceptions import ConfigError, PermissionDenied
from .kube import Access, Kube
from .manifests import (RUNNER_NAME, missing_rules, runner_rules, role_binding_manifest, role_manifest,
                        service_account_manifest, validate_namespace)

CALLER_NEEDS: tuple[tuple[str, str, str, str], ...] = (
    # verb, resource, group, subresource
    ("create", "jobs", "batch", ""),
    ("get", "jobs", "batch", ""),
    ("list", "jobs", "batch", ""),
    ("delete", "jobs", "batch", ""),
    ("get", "pods", "", ""),
    ("list", "pods", "", ""),
    ("delete", "pods", "", ""),
    ("get", "pods", "", "log"),
)


@dataclass(frozen=True, kw_only=True)
class SetupResult:
    """What setup found and did in `namespace`."""

    namespace: str
    service_account: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)


def check_caller(kube: Kube, namespace: str) -> None:
    """PermissionDenied listing every permission the caller lacks for running flows in `namespace`."""
    missing = []
    for verb, resource, group, sub in CALLER_NEEDS:
        access = Access(verb=verb, resource=resource, group=group, subresource=sub, namespace=namespace)
        allowed, _reason = kube.can_i(access)
        if not allowed:
            missing.append(str(access).replace(f" in namespace {namespace}", ""))
    if missing:
        raise PermissionDenied(f"you may not {', '.join(missing)} in namespace {namespace!r}",
                               hint="ask a cluster admin for a Role with these verbs bound to you")


def _is_ours(obj: Mapping[str, Any]) -> bool:
    return labels_of(obj).get(core_labels.MANAGED_BY_LABEL) == "dok"


def _rules_as_dicts(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"apiGroups": list(r.get("apiGroups") or []), "resources": list(r.get("resources") or []),
             "verbs": list(r.get("verbs") or [])} for r in (role.get("rules") or [])]


def _has_token(sa: Mapping[str, Any] | None) -> bool:
    return sa is not None and bool(sa.get("secrets"))


def _wait_for_token(kube: Kube, namespace: str, name: str, timeout: float = 20.0) -> None:
    """Kubernetes < 1.24 refuses pods of a ServiceAccount until its token Secret exists: wait (bounded)."""
    sa = kube_retry.poll(lambda: kube.read("ServiceAccount", namespace, name), done=_has_token, timeout=timeout,
                         interval=0.2)
    if _has_token(sa):
        return
    raise ConfigError(f"ServiceAccount {namespace}/{name} got no token Secret within {timeout:g} s",
                      hint="is the cluster's controller-manager (token controller) running?")


def needs_token_secrets(version: str) -> bool:
    """True for servers older than 1.24 (they mount legacy token Secrets)."""
    import re

    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return bool(match) and (int(match.group(1)), int(match.group(2))) < (1, 24)


def ensure_runner_rbac(kube: Kube, namespace: str, name: str = RUNNER_NAME, *,
                       token_secrets: bool = False, backend: str = "pods") -> SetupResult:
    """Create or verify the runner's ServiceAccount, Role and RoleBinding (and, on Kubernetes < 1.24,
    wait until the ServiceAccount has its token Secret, without which its pods cannot be created)."""
    result = SetupResult(namespace=namespace, service_account=name)

    def create(manifest: dict[str, Any]) -> None:
        kind = manifest["kind"]
        try:
            kube.create(manifest)
            result.created.append(f"{kind}/{name}")
        except Forbidden as exc:
            raise PermissionDenied(f"{kind} {namespace}/{name} is missing and you may not create it: {exc.message}",
                                   hint="ask a cluster admin to run `dok setup` (or create it) in this namespace") from exc
        except Conflict:  # created concurrently by another dok — fine
            pass

    sa = kube.read("ServiceAccount", namespace, name)
    if sa is None:
        create(service_account_manifest(namespace, name))
    else:
        result.verified.append(f"ServiceAccount/{name}")
    if token_secrets and not _has_token(sa):
        _wait_for_token(kube, namespace, name)

    wanted_role = role_manifest(namespace, name, backend=backend)
    role = kube.read("Role", namespace, name)
    if role is None:
        create(wanted_role)
    else:
        lacking = missing_rules(_rules_as_dicts(role), required=runner_rules(backend))
        if lacking and _is_ours(role):
            kube.replace(wanted_role)
            result.updated.append(f"Role/{name}")
        elif lacking:
            raise PermissionDenied(f"Role {namespace}/{name} (not managed by dok) lacks: {', '.join(lacking)}",
                                   hint="add these rules, or delete the Role and rerun so dok creates its own")
        else:
            result.verified.append(f"Role/{name}")

    wanted_binding = role_binding_manifest(namespace, name)
    binding = kube.read("RoleBinding", namespace, name)
    if binding is None:
        create(wanted_binding)
    else:
        ref = binding.get("roleRef") or {}
        ref_ok = ref.get("kind") == "Role" and ref.get("name") == name
        subject_ok = any(s.get("kind") == "ServiceAccount" and s.get("name") == name
                         and (s.get("namespace") or namespace) == namespace for s in (binding.get("subjects") or []))
        if ref_ok and subject_ok:
            result.verified.append(f"RoleBinding/{name}")
        elif _is_ours(binding) and ref_ok:
            kube.replace(wanted_binding)
            result.updated.append(f"RoleBinding/{name}")
        elif _is_ours(binding):  # roleRef is immutable: recreate
            kube.delete("RoleBinding", namespace, name)
            create(wanted_binding)
        else:
            raise PermissionDenied(f"RoleBinding {namespace}/{name} (not managed by dok) does not bind "
                                   f"ServiceAccount {name} to Role {name}",
                                   hint="fix it, or delete it and rerun so dok creates its own")
    return result


def setup(env: Any = None, *, namespace: str | None = None, kube: Kube | None = None,
          kubeconfig: str | None = None, check_permissions: bool = True, backend: str = "pods") -> SetupResult:
    """Prepare `namespace` (default: the environment's) for dok runs; see the module docstring."""
    kube = kube or Kube.connect(kubeconfig=kubeconfig)
    ns = namespace or getattr(env, "namespace", None) or kube.default_namespace
    validate_namespace(ns)
    version = kube.ping()
    exists = kube.namespace_exists(ns)
    if exists is False:
        raise ConfigError(f"namespace {ns!r} does not exist", hint=f"create it: kubectl create namespace {ns}")
    if check_permissions:
        check_caller(kube, ns)
    return ensure_runner_rbac(kube, ns, token_secrets=needs_token_secrets(version), backend=backend)


def check_service_account(kube: Kube, namespace: str, name: str, *, backend: str = "pods") -> str | None:
    """Refuse a run whose job pod would use ServiceAccount `name` when it does not exist or lacks a right the
    runner needs (PermissionDenied listing them); returns a warning when the rights could not be checked."""
    try:
        exists = kube.read("ServiceAccount", namespace, name)
    except Forbidden:
        exists = True  # may not read it: the Job's pod creation will say if it is missing
    if exists is None:
        raise ConfigError(f"service account {name!r} does not exist in namespace {namespace!r}",
                          hint=f"create it (kubectl create serviceaccount {name} -n {namespace}) with a Role that "
                               "allows what the runner does (see `dok setup`'s dok-runner Role), or leave "
                               "service_account unset to use dok-runner")
    missing = []
    for rule in runner_rules(backend):
        group = rule["apiGroups"][0]
        for resource in rule["resources"]:
            base, _, sub = resource.partition("/")
            for verb in rule["verbs"]:
                access = Access(verb=verb, resource=base, subresource=sub, group=group, namespace=namespace)
                try:
                    allowed, _reason = kube.can_service_account(access, service_account=name)
                except Forbidden:
                    return (f"could not check the rights of service account {name!r} (you may not create "
                            "subjectaccessreviews): the run fails later if it may not manage worker pods")
                if not allowed:
                    missing.append(f"{verb} {resource}")
    if missing:
        raise PermissionDenied(f"service account {name!r} in namespace {namespace!r} may not "
                               f"{', '.join(missing)}: the runner needs these to manage the worker pods",
                               hint=f"bind it to a Role with these verbs (`dok setup -n {namespace}` creates one, "
                                    f"dok-runner: `kubectl create rolebinding ... --role dok-runner "
                                    f"--serviceaccount {namespace}:{name}`)")
    return None
