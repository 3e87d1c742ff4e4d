"""The adapter against stand-in client APIs (no cluster): dicts out, retries per policy, translated errors,
deletes that treat 404 as done, kubeconfig loading, and a fast failure when nothing listens."""

from __future__ import annotations

import functools
import logging
import time

import pytest

from dok.kube import Hints, Kube
from dok.kube.client import Access
from dok.kube.exceptions import ClusterUnreachable, Forbidden, KubeconfigError, NotFound
from kube_fakes import ScriptedApi, api_error, refused, scripted_kube, unreachable_kubeconfig


kube = functools.partial(scripted_kube, hints=Hints(forbidden="ask for pods create"))


def test_list_returns_dicts_and_retries_transient_failures(caplog):
    core = ScriptedApi(list_namespaced_pod=[refused(), api_error(503), {"items": [{"metadata": {"name": "a"}}]}])
    k, sleeps = kube(core=core)
    with caplog.at_level(logging.WARNING):
        assert k.list_pods("ns", "x=y") == [{"metadata": {"name": "a"}}]
    assert len(sleeps) == 2 and core.calls[0][2]["label_selector"] == "x=y"
    assert core.calls[0][2]["_preload_content"] is False and core.calls[0][2]["_request_timeout"] == (5.0, 30.0)
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


def test_gives_up_after_the_budget_naming_the_attempts():
    core = ScriptedApi(list_namespaced_pod=[refused()] * 100)
    k, sleeps = kube(budget=2.0, core=core)
    with pytest.raises(ClusterUnreachable, match="cluster unreachable at https://fake:6443") as info:
        k.list_pods("ns", "x=y")
    assert "gave up after" in str(info.value) and info.value.hint and sum(sleeps) <= 2.0


def test_errors_are_translated_without_retry():
    core = ScriptedApi(read_namespaced_pod=[api_error(403, "the message")])
    k, sleeps = kube(core=core)
    with pytest.raises(Forbidden, match="read Pod ns/p: forbidden: the message") as info:
        k.read("Pod", "ns", "p")
    assert info.value.hint == "ask for pods create" and sleeps == []


def test_read_missing_is_none_and_delete_treats_404_as_done():
    core = ScriptedApi(read_namespaced_pod=[api_error(404)], delete_namespaced_pod=[api_error(404), {}])
    k, _ = kube(core=core)
    assert k.read("Pod", "ns", "gone") is None
    assert k.delete_pod("ns", "gone") is False
    assert k.delete_pod("ns", "here", grace_period_seconds=1) is True
    assert core.calls[-1][2]["grace_period_seconds"] == 1 and core.calls[-1][2]["body"]["gracePeriodSeconds"] == 1


def test_create_sends_the_manifest_and_returns_the_object():
    manifest = {"kind": "Job", "metadata": {"name": "j", "namespace": "ns"}, "spec": {"ttlSecondsAfterFinished": 5}}
    batch = ScriptedApi(create_namespaced_job=[{**manifest, "status": {}}])
    k, _ = kube(batch=batch)
    assert k.create(manifest)["spec"] == {"ttlSecondsAfterFinished": 5}
    assert batch.calls[0][1] == ("ns", manifest)


def test_can_i_and_ping_and_quick_events():
    authz = ScriptedApi(create_self_subject_access_review=[{"status": {"allowed": False, "reason": "no RBAC"}}])
    version = ScriptedApi(get_code=[{"gitVersion": "v1.20.15"}])
    core = ScriptedApi(list_namespaced_event=[refused()])
    k, sleeps = kube(authz=authz, version=version, core=core)
    assert k.can_i(Access(verb="create", resource="jobs", group="batch", namespace="ns")) == (False, "no RBAC")
    body = authz.calls[0][1][0]
    assert body["spec"]["resourceAttributes"] == {"verb": "create", "resource": "jobs", "group": "batch",
                                                  "namespace": "ns"}
    assert k.ping() == "v1.20.15"
    with pytest.raises(ClusterUnreachable):
        k.events("ns", "p", quick=True)
    assert sleeps == [] and core.calls[0][2]["_request_timeout"] == (3.0, 5.0)


def test_can_service_account_reviews_as_the_service_account():
    authz = ScriptedApi(create_subject_access_review=[{"status": {"allowed": True}}])
    k, _ = kube(authz=authz)
    access = Access(verb="get", resource="pods", subresource="log", namespace="team-a")
    assert k.can_service_account(access, service_account="runner-sa") == (True, "")
    spec = authz.calls[0][1][0]["spec"]
    assert spec["user"] == "system:serviceaccount:team-a:runner-sa"
    assert "system:serviceaccounts:team-a" in spec["groups"]
    assert spec["resourceAttributes"] == {"verb": "get", "resource": "pods", "subresource": "log",
                                          "namespace": "team-a"}


def test_kubeconfig_namespace_and_fast_failure_when_nothing_listens(tmp_path):
    cfg, port = unreachable_kubeconfig(tmp_path, namespace="team-a")
    k = Kube.from_kubeconfig(cfg)
    assert k.default_namespace == "team-a" and k.host == f"https://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable) as info:
        k.ping()
    assert time.monotonic() - start < 10
    assert f"127.0.0.1:{port}" in info.value.message and "connection refused" in info.value.message


def test_broken_kubeconfig(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(KubeconfigError) as info:
        Kube.from_kubeconfig(cfg)
    assert info.value.exit_code == 2 and str(cfg) in info.value.message


def test_unknown_kind_is_a_programming_error():
    k, _ = kube()
    with pytest.raises(ValueError):
        k.read("ConfigMap", "ns", "x")


def test_not_found_is_usage_exit_code():
    core = ScriptedApi(read_namespaced_pod_log=[api_error(404, "pod gone")])
    k, _ = kube(core=core)
    with pytest.raises(NotFound) as info:
        k.pod_log("ns", "p")
    assert info.value.exit_code == 2


def test_each_port_forward_stream_has_its_own_api_client(monkeypatch) -> None:
    """kubernetes.stream patches the ApiClient it connects with: never the shared one (other threads use it)."""
    from kubernetes import client, stream

    shared = client.ApiClient(client.Configuration(host="https://127.0.0.1:1"))
    kube = Kube(shared, host="https://127.0.0.1:1")
    used = []

    def fake_portforward(api_method, pod, namespace, **kwargs):
        used.append(api_method.__self__.api_client)
        return object()

    monkeypatch.setattr(stream, "portforward", fake_portforward)
    kube.open_port_forward("ns", "pod", 8787)
    kube.open_port_forward("ns", "pod", 8787)
    assert len(used) == 2 and shared not in used and used[0] is not used[1]
    assert all(c.configuration is shared.configuration for c in used)
def test_port_forward_stream_never_borrows_the_shared_api_client(tmp_path, monkeypatch):
    """kubernetes.stream patches `api_client.request` while it opens a stream: the shared client must stay
    untouched so that calls from other threads (the run's watch) keep working meanwhile."""
    import kubernetes.stream

    cfg = tmp_path / "kubeconfig"
    cfg.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
""")
    k = Kube.from_kubeconfig(cfg)
    seen = []

    def fake_portforward(method, pod, namespace, **kwargs):
        seen.append((method.__self__.api_client, pod, namespace, kwargs))
        return "stream"

    monkeypatch.setattr(kubernetes.stream, "portforward", fake_portforward)
    assert k.open_port_forward("team-a", "p", 8788) == "stream"
    client, pod, namespace, kwargs = seen[0]
    assert client is not k.core.api_client and client.configuration is k.core.api_client.configuration
    assert (pod, namespace, kwargs) == ("p", "team-a", {"ports": "8788"})


def test_an_ended_port_forward_relay_thread_prints_no_traceback(monkeypatch):
    import ssl
    import threading

    import dok.kube.client as kc

    seen: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(repr(args.exc_value)))
    monkeypatch.setattr(kc, "_hook_installed", False)
    kc._quiet_proxy_thread_ends()
    kc._quiet_proxy_thread_ends()  # idempotent

    def ended():
        raise ssl.SSLEOFError(8, "EOF occurred in violation of protocol")

    def broken():
        raise ValueError("a real bug")

    for target in (ended, broken):
        t = threading.Thread(target=target, name="Kubernetes port forward proxy: 8788")
        t.start()
        t.join()
    other = threading.Thread(target=ended, name="some other thread")
    other.start()
    other.join()
    assert len(seen) == 2 and "a real bug" in seen[0] and "SSLEOFError" in seen[1], seen
