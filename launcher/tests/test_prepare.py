"""setup(): the runner's RBAC is created or verified; missing permissions are named precisely."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
from kubernetes.client.exceptions import ApiException

import copy

from dok.kube.errors import translate
from dok.launcher import manifests as m
from dok.launcher.exceptions import ConfigError, PermissionDenied
from dok.launcher.prepare import ensure_runner_rbac, setup


class RbacKube:
    host = "https://fake:6443"
    default_namespace = "default"

    def __init__(self, objects=None, denied=(), can_create=True, namespace_exists=True):
        self.objects = dict(objects or {})
        self.denied = set(denied)
        self.can_create = can_create
        self.created, self.replaced = [], []
        self._ns_exists = namespace_exists
        self.deleted = []

    def ping(self):
        return "v1.20.2"

    def namespace_exists(self, ns):
        return self._ns_exists

    def can_i(self, access):
        return (str(access).split(" in namespace")[0] not in self.denied), ""

    def read(self, kind, ns, name):
        obj = self.objects.get((kind, name))
        return copy.deepcopy(obj) if obj else None  # the API's JSON, as dok.kube returns it

    def create(self, manifest):
        if not self.can_create:
            raise translate(ApiException(status=403, reason="Forbidden"), action="create")
        self.created.append(manifest["kind"])
        if manifest["kind"] == "ServiceAccount":  # the token controller's work, at once
            manifest = dict(manifest, secrets=[{"name": "dok-runner-token-x"}])
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest

    def replace(self, manifest):
        self.replaced.append(manifest["kind"])
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest

    def delete(self, kind, ns, name, grace_period_seconds=None):
        self.deleted.append(kind)
        return self.objects.pop((kind, name), None) is not None


def all_objects(ns="ns"):
    return {(o["kind"], o["metadata"]["name"]): o for o in (
        m.service_account_manifest(ns), m.role_manifest(ns), m.role_binding_manifest(ns))}


def test_creates_missing_objects():
    kube = RbacKube()
    res = ensure_runner_rbac(kube, "ns")
    assert kube.created == ["ServiceAccount", "Role", "RoleBinding"]
    assert res.created == ["ServiceAccount/dok-runner", "Role/dok-runner", "RoleBinding/dok-runner"]


def test_verifies_existing_objects():
    kube = RbacKube(all_objects())
    res = ensure_runner_rbac(kube, "ns")
    assert kube.created == [] and kube.replaced == []
    assert len(res.verified) == 3


def test_repairs_our_role_when_it_lacks_rules():
    objs = all_objects()
    objs[("Role", "dok-runner")] = dict(objs[("Role", "dok-runner")],
                                        rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    kube = RbacKube(objs)
    res = ensure_runner_rbac(kube, "ns")
    assert kube.replaced == ["Role"] and res.updated == ["Role/dok-runner"]


def test_foreign_role_lacking_rules_is_named():
    objs = all_objects()
    role = dict(objs[("Role", "dok-runner")], rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    role["metadata"] = dict(role["metadata"], labels={})
    objs[("Role", "dok-runner")] = role
    with pytest.raises(PermissionDenied) as info:
        ensure_runner_rbac(RbacKube(objs), "ns")
    assert "create pods" in info.value.message and "get pods/log" in info.value.message


def test_missing_and_not_allowed_to_create():
    with pytest.raises(PermissionDenied) as info:
        ensure_runner_rbac(RbacKube(can_create=False), "ns")
    assert "ServiceAccount ns/dok-runner is missing and you may not create it" in info.value.message


def test_caller_permissions_listed():
    kube = RbacKube(all_objects(), denied={"create jobs.batch", "delete pods"})
    with pytest.raises(PermissionDenied) as info:
        setup(None, namespace="ns", kube=kube)
    assert "create jobs.batch" in info.value.message and "delete pods" in info.value.message
    assert "'ns'" in info.value.message


def test_namespace_missing():
    with pytest.raises(ConfigError, match="namespace 'ghost' does not exist"):
        setup(None, namespace="ghost", kube=RbacKube(namespace_exists=False))


def test_env_namespace_used():
    kube = RbacKube()
    res = setup(NS(namespace="team-b"), kube=kube)
    assert res.namespace == "team-b"


def test_waits_for_service_account_token_on_old_clusters(monkeypatch):
    import dok.launcher.prepare as prep

    kube = RbacKube(all_objects())  # SA without a token secret, never getting one
    with pytest.raises(ConfigError, match="no token Secret"):
        prep._wait_for_token(kube, "ns", "dok-runner", timeout=0.3)
    assert prep.needs_token_secrets("v1.20.2") and not prep.needs_token_secrets("v1.29.0")


def test_our_binding_to_another_role_is_recreated():
    objs = all_objects()
    binding = copy.deepcopy(objs[("RoleBinding", "dok-runner")])
    binding["roleRef"] = dict(binding["roleRef"], kind="ClusterRole", name="view")
    objs[("RoleBinding", "dok-runner")] = binding
    kube = RbacKube(objs)
    res = ensure_runner_rbac(kube, "ns")
    assert kube.deleted == ["RoleBinding"] and kube.created == ["RoleBinding"]
    assert res.created == ["RoleBinding/dok-runner"]
    assert kube.objects[("RoleBinding", "dok-runner")]["roleRef"]["kind"] == "Role"


def test_created_concurrently_is_fine():
    class Racing(RbacKube):
        def create(self, manifest):
            raise translate(ApiException(status=409, reason="AlreadyExists"), action="create")

    res = ensure_runner_rbac(Racing(all_objects() | {("ServiceAccount", "dok-runner"): None}), "ns")
    assert res.created == [] and res.verified == ["Role/dok-runner", "RoleBinding/dok-runner"]


# -- a run's own service account ------------------------------------------------------------------------------
class ServiceAccountKube:
    """`read` finds the ServiceAccounts in `accounts`; `can_service_account` grants `granted` (verb, resource)."""

    def __init__(self, accounts=("custom",), granted=None, may_review=True):
        self.accounts = set(accounts)
        self.granted = granted
        self.may_review = may_review
        self.reviews = []

    def read(self, kind, ns, name):
        assert kind == "ServiceAccount"
        return {"metadata": {"name": name}} if name in self.accounts else None

    def can_service_account(self, access, *, service_account):
        from dok.kube import Forbidden

        if not self.may_review:
            raise Forbidden("subjectaccessreviews is forbidden")
        self.reviews.append((service_account, access.verb, access.resource, access.subresource, access.namespace))
        self.groups = getattr(self, "groups", set()) | {(access.group, access.resource)}
        resource = f"{access.resource}/{access.subresource}" if access.subresource else access.resource
        return (self.granted is None or (access.verb, resource) in self.granted), ""


def test_a_service_account_with_every_right_passes() -> None:
    from dok.launcher.prepare import check_service_account

    kube = ServiceAccountKube()
    assert check_service_account(kube, "ns1", "custom") is None
    assert ("custom", "create", "pods", "", "ns1") in kube.reviews
    assert ("custom", "get", "pods", "log", "ns1") in kube.reviews
    assert len(kube.reviews) == sum(len(r["resources"]) * len(r["verbs"]) for r in m.RUNNER_RULES)
    assert ("batch", "jobs") in kube.groups and ("", "pods") in kube.groups  # each rule asked in its API group
    assert not any(g == "kubernetes.dask.org" for g, _ in kube.groups)  # operator rights only for that backend
    operator = ServiceAccountKube()
    assert check_service_account(operator, "ns1", "custom", backend="operator") is None
    assert ("kubernetes.dask.org", "daskclusters") in operator.groups


def test_a_service_account_missing_rights_is_refused_naming_them() -> None:
    from dok.launcher.prepare import check_service_account

    granted = {("get", "pods"), ("list", "pods"), ("watch", "pods"), ("get", "pods/log"), ("list", "events"),
               ("watch", "events")}
    with pytest.raises(PermissionDenied) as info:
        check_service_account(ServiceAccountKube(granted=granted), "ns1", "custom")
    assert "may not create pods, delete pods" in info.value.message and "'custom'" in info.value.message


def test_a_missing_service_account_and_an_unchecked_one() -> None:
    from dok.launcher.prepare import check_service_account

    with pytest.raises(ConfigError, match="service account 'nobody' does not exist in namespace 'ns1'"):
        check_service_account(ServiceAccountKube(), "ns1", "nobody")
    warning = check_service_account(ServiceAccountKube(may_review=False), "ns1", "custom")
    assert warning and "could not check the rights of service account 'custom'" in warning
