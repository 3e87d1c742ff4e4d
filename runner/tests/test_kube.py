"""The runner's use of the shared Kubernetes adapter (dok.kube): its retry policy and hints (transient failures
retried with backoff, the rest translated naming the service account); PodWorkerBackend's create/cleanup
semantics (fake CoreV1Api, no cluster)."""

from __future__ import annotations

import asyncio
import functools

import pytest

from dok.runner.backend import PodWorkerBackend, warning_events_text
from dok.core.runspec import RunSpec
from dok.runner.config import RunnerConfig
from dok.kube.exceptions import ClusterUnreachable
from dok.runner.exceptions import Conflict, Forbidden, KubernetesError, NotFound
from dok.runner.kube import HINTS, RETRY, connect
from kube_fakes import ScriptedApi, api_error, refused, scripted_kube


kube = functools.partial(scripted_kube, hints=HINTS)


def test_transient_errors_are_retried_with_growing_backoff():
    core = ScriptedApi(list_namespaced_pod=[refused(), api_error(503), api_error(429), refused(),
                                            {"items": [{"a": 1}]}])
    k, sleeps = kube(core=core)
    assert k.list_pods("ns", "x=y") == [{"a": 1}]
    assert len(sleeps) == 4 and sleeps[-1] > sleeps[0]
    assert core.calls[0][2]["label_selector"] == "x=y"


def test_gives_up_after_the_budget_with_a_hint():
    core = ScriptedApi(list_namespaced_pod=[refused()] * 100)
    k, sleeps = kube(core=core, budget=2.0)
    with pytest.raises(ClusterUnreachable, match="cluster unreachable") as info:
        k.list_pods("ns", "x=y")
    assert "gave up after" in str(info.value) and "unreachable from this pod" in info.value.hint
    assert sum(sleeps) <= 2.0


@pytest.mark.parametrize("status,cls,text", [
    (404, NotFound, "not found"), (409, Conflict, "already exists"), (403, Forbidden, "pods create"),
    (422, KubernetesError, "invalid"), (400, KubernetesError, "HTTP 400"),
])
def test_errors_are_translated_without_retry(status, cls, text):
    core = ScriptedApi(create_namespaced_pod=[api_error(status, "the message")])
    k, sleeps = kube(core=core)
    with pytest.raises(cls, match=text) as info:
        k.create({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}})
    assert "the message" in str(info.value) and "create Pod ns/p" in str(info.value)
    assert sleeps == []


def test_delete_treats_404_as_success():
    core = ScriptedApi(delete_namespaced_pod=[api_error(404), {}])
    k, _ = kube(core=core)
    assert k.delete_pod("ns", "gone") is False
    assert k.delete_pod("ns", "here", grace_period_seconds=1) is True
    assert core.calls[1][2]["grace_period_seconds"] == 1


def test_connect_outside_a_pod_uses_kubeconfig(tmp_path, monkeypatch):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    k = connect()
    assert k.host == "https://127.0.0.1:1" and k.retry is RETRY and k.hints is HINTS
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubernetesError, match="no Kubernetes configuration"):
        connect()


CONFIG = RunnerConfig(spec=RunSpec(identifier="0f8e2d3c-aaaa", flow_name="fanout", image="img", namespace="ns"),
                      pod_name="job", pod_uid="uid-9", pod_ip="10.1.2.3")
JOB_POD = {"metadata": {"name": "job", "uid": "uid-9"}, "spec": {"containers": [{"name": "runner", "env": []}]}}


def test_backend_create_reads_the_job_pod_once_and_builds_the_manifest():
    core = ScriptedApi(read_namespaced_pod=[JOB_POD], create_namespaced_pod=[lambda ns, body, **k: body] * 2)
    backend = PodWorkerBackend(config=CONFIG, kube=kube(core=core)[0])
    asyncio.run(backend.prepare())
    names = [backend.new_name(), backend.new_name()]
    assert names == ["dok-fanout-0f8e2d3c-worker-0", "dok-fanout-0f8e2d3c-worker-1"]
    for n in names:
        asyncio.run(backend.create(n, CONFIG.scheduler_address))
    body = core.calls[-1][1][1]
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-9"
    assert body["spec"]["containers"][0]["command"][3] == "tcp://10.1.2.3:8786"
    assert [c[0] for c in core.calls].count("read_namespaced_pod") == 1


def test_backend_create_conflict_with_own_live_pod_is_success():
    mine = {"metadata": {"name": "w", "labels": {"dok.dev/identifier": "0f8e2d3c-aaaa"}}}
    core = ScriptedApi(read_namespaced_pod=[JOB_POD, mine], create_namespaced_pod=[api_error(409)])
    backend = PodWorkerBackend(config=CONFIG, kube=kube(core=core)[0])
    asyncio.run(backend.create("w", CONFIG.scheduler_address))


def test_backend_create_conflict_with_someone_elses_pod_fails():
    other = {"metadata": {"name": "w", "labels": {"dok.dev/identifier": "another-run"}}}
    core = ScriptedApi(read_namespaced_pod=[JOB_POD, other], create_namespaced_pod=[api_error(409)])
    backend = PodWorkerBackend(config=CONFIG, kube=kube(core=core)[0])
    with pytest.raises(Conflict):
        asyncio.run(backend.create("w", CONFIG.scheduler_address))


RUNNING = {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}
PULLING = {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}


def test_backend_cleanup_lists_workers_only_and_deletes_live_ones():
    pods = {"items": [{"metadata": {"name": "a"}, "status": RUNNING},
                      {"metadata": {"name": "b", "deletionTimestamp": "t"}, "status": RUNNING},
                      {"metadata": {"name": "c"}, "status": RUNNING},
                      {"metadata": {"name": "d", "deletionTimestamp": "t"}, "status": PULLING}]}
    core = ScriptedApi(list_namespaced_pod=[pods], delete_namespaced_pod=[{}, api_error(404), {}])
    backend = PodWorkerBackend(config=CONFIG, kube=kube(core=core)[0])
    assert asyncio.run(backend.cleanup()) == ["a", "d"]
    selector = core.calls[0][2]["label_selector"]
    assert selector == "dok.dev/identifier=0f8e2d3c-aaaa,app.kubernetes.io/component=worker"
    graces = [c[2]["grace_period_seconds"] for c in core.calls if c[0] == "delete_namespaced_pod"]
    assert graces == [1, 1, 0]  # a never-started pod goes at once, even if already Terminating


def test_backend_deletes_pods_that_never_started_without_grace():
    pods = {"items": [{"metadata": {"name": "w-0"}, "status": PULLING},
                      {"metadata": {"name": "w-1"}, "status": RUNNING}]}
    core = ScriptedApi(list_namespaced_pod=[pods], delete_namespaced_pod=[{}, {}])
    backend = PodWorkerBackend(config=CONFIG, kube=kube(core=core)[0])
    asyncio.run(backend.observe())
    asyncio.run(backend.delete("w-0"))
    asyncio.run(backend.delete("w-1"))
    assert [c[2]["grace_period_seconds"] for c in core.calls[1:]] == [0, 1]


def test_warning_events_text_keeps_the_last_distinct_warnings():
    events = [
        {"type": "Normal", "reason": "Scheduled", "message": "assigned", "lastTimestamp": "2026-01-01T00:00:01Z"},
        {"type": "Warning", "reason": "Failed", "message": "Failed to pull image x: connection refused",
         "lastTimestamp": "2026-01-01T00:00:03Z"},
        {"type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull", "lastTimestamp": "2026-01-01T00:00:04Z"},
        {"type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull", "lastTimestamp": "2026-01-01T00:00:05Z"},
    ]
    assert warning_events_text(events) == ["event Failed: Failed to pull image x: connection refused",
                                           "event Failed: Error: ErrImagePull"]
    assert warning_events_text([]) == []


def test_prestarted_worker_is_adopted_by_the_next_name_and_create_is_idempotent():
    mine = {"metadata": {"name": "dok-fanout-0f8e2d3c-worker-0", "labels": {"dok.dev/identifier": "0f8e2d3c-aaaa"}}}
    core = ScriptedApi(read_namespaced_pod=[JOB_POD, mine],
                    create_namespaced_pod=[lambda ns, body, **k: body, api_error(409), lambda ns, body, **k: body])
    backend = PodWorkerBackend(config=CONFIG, kube=kube(core=core)[0])
    asyncio.run(backend.prepare())
    first = asyncio.run(backend.prestart(CONFIG.scheduler_address))
    assert first == "dok-fanout-0f8e2d3c-worker-0"
    assert backend.new_name() == first          # SpecCluster's first worker is the pod already started
    asyncio.run(backend.create(first, CONFIG.scheduler_address))  # 409 on our own live pod: fine
    assert backend.new_name() == "dok-fanout-0f8e2d3c-worker-1"


def test_previous_job_pods_finds_earlier_pods_of_the_job_but_not_itself():
    from dok.runner.backend import previous_job_pods

    events = [
        {"reason": "SuccessfulCreate", "message": "Created pod: dok-x-abc12"},
        {"reason": "SuccessfulCreate", "message": "Created pod: dok-x-def34"},
        {"reason": "SuccessfulDelete", "message": "Deleted pod: dok-x-abc12"},
        {"reason": "SuccessfulCreate", "message": "Created pod: dok-x-abc12"},
    ]
    assert previous_job_pods(events, own_pod="dok-x-def34") == ["dok-x-abc12"]
    assert previous_job_pods(events[1:2], own_pod="dok-x-def34") == []
    assert previous_job_pods([], own_pod="p") == []
