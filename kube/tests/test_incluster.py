"""dok.kube.incluster: the light calls' routing (light first, the full client only when needed), their
fallback on failure, 404/409 answered as `Kube` answers them, and the REST paths. The HTTPS calls themselves
run against the real API server in the e2e tests (every run's job pod uses them)."""

from __future__ import annotations

import ssl

import pytest

from dok.kube.exceptions import Conflict
from dok.kube.incluster import InClusterRest, LightCallFailed, LightFirst, _path


class Light:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def _answer(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if self.fail:
            raise LightCallFailed("HTTP 500: overloaded")
        return {"via": "light", "call": name}

    def read(self, *a, **k):
        return self._answer("read", *a, **k)

    def events(self, *a, **k):
        return [self._answer("events", *a, **k)]

    def list_pods(self, *a, **k):
        return [self._answer("list_pods", *a, **k)]

    def create(self, manifest):
        self.calls.append(("create", (manifest,), {}))
        raise Conflict("create Pod ns/w: already exists", status=409)

    def patch(self, *a, **k):
        return self._answer("patch", *a, **k)


class Full:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return {"via": "full", "call": name}
        return call


def test_light_calls_never_create_the_full_client():
    made: list[Full] = []
    kube = LightFirst(Light(), full=lambda: made.append(Full()) or made[-1])
    assert kube.read("Pod", "ns", "p") == {"via": "light", "call": "read"}
    assert kube.events("ns", "job", kind="Job", quick=True)[0]["via"] == "light"  # `quick` is the full client's
    assert kube.list_pods("ns", "a=b")[0]["via"] == "light"
    assert kube.patch("Job", "ns", "j", {"spec": {}})["via"] == "light"
    assert not made and not kube.loaded


def test_other_calls_and_failed_light_calls_go_to_one_full_client():
    made: list[Full] = []
    kube = LightFirst(Light(fail=True), full=lambda: made.append(Full()) or made[-1])
    assert kube.read("Pod", "ns", "p") == {"via": "full", "call": "read"}  # made again with retries and hints
    assert kube.delete_pod("ns", "p", grace_period_seconds=1) == {"via": "full", "call": "delete_pod"}
    assert kube.events("ns", "p", quick=True) == {"via": "full", "call": "events"}
    assert len(made) == 1 and kube.loaded
    assert made[0].calls[-1] == ("events", ("ns", "p"), {"kind": "Pod", "quick": True})


def test_a_conflict_on_create_is_raised_as_kube_raises_it_not_retried():
    full = Full()
    kube = LightFirst(Light(), full=lambda: full)
    with pytest.raises(Conflict):
        kube.create({"kind": "Pod", "metadata": {"namespace": "ns", "name": "w"}})
    assert full.calls == []


def test_outside_a_pod_there_is_no_light_client(tmp_path):
    assert InClusterRest.from_environ({}) is None
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert InClusterRest.from_environ(env, token_path=str(tmp_path / "none"), ca_path=str(tmp_path / "none")) is None
    (tmp_path / "token").write_text("abc\n")
    (tmp_path / "ca.crt").write_text("not a certificate")
    assert InClusterRest.from_environ(env, token_path=str(tmp_path / "token"), ca_path=str(tmp_path / "ca.crt")) is None


def test_paths_and_unserved_kinds():
    assert _path("Pod", "team-a", "w-1") == "/api/v1/namespaces/team-a/pods/w-1"
    assert _path("Job", "team-a") == "/apis/batch/v1/namespaces/team-a/jobs"
    assert _path("Event", "team-a") == "/api/v1/namespaces/team-a/events"
    with pytest.raises(LightCallFailed):
        _path("Secret", "team-a", "s")
    rest = InClusterRest(host="127.0.0.1", port=1, token="t", context=ssl.create_default_context(), timeout=0.5)
    with pytest.raises(LightCallFailed):  # nothing listens: the caller falls back to the full client
        rest.read("Pod", "ns", "p")
