"""The launcher's connection (dok.kube's adapter with the CLI user's hints): every SDK failure becomes an
error with a hint and the CLI's exit code (2: fix something, 3: the platform)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from dok.kube.errors import translate
from dok.kube.exceptions import KubeconfigError
from dok.launcher.exceptions import ClusterUnreachable
from dok.launcher.kube import Kube, hints_for
from dok.launcher.kubeconfig import KubeconfigChoice
from kube_fakes import unreachable_kubeconfig

LOCAL = hints_for(KubeconfigChoice(path=Path("/x"), source="local-cluster"))
HOME = hints_for(KubeconfigChoice(path=Path("/x"), source="home"))


def api(status, message="nope"):
    exc = ApiException(status=status, reason="R")
    exc.body = '{"message": "%s"}' % message
    return exc


@pytest.mark.parametrize("status,code", [(401, 2), (403, 2), (404, 2), (409, 2), (422, 2), (500, 3), (503, 3)])
def test_api_statuses(status, code):
    err = translate(api(status, "jobs.batch is forbidden"), action="create Job x", hints=HOME)
    assert err.exit_code == code
    assert "create Job x" in err.message
    assert err.hint


def test_hints_speak_to_the_cli_user():
    assert "--namespace" in translate(api(403), action="a", hints=HOME).hint
    assert "--namespace" in translate(api(404), action="a", hints=HOME).hint


def test_forbidden_keeps_server_message():
    err = translate(api(403, 'jobs.batch is forbidden: User \\"bob\\" cannot create'), action="create Job j", hints=HOME)
    assert 'User "bob" cannot create' in err.message


def test_connection_refused_names_host_and_local_hint():
    exc = urllib3.exceptions.MaxRetryError(None, "/version", reason=ConnectionRefusedError("[Errno 111] Connection refused"))
    err = translate(exc, action="contact the API server", host="https://10.200.0.1:6443", hints=LOCAL)
    assert isinstance(err, ClusterUnreachable) and err.exit_code == 3
    assert "https://10.200.0.1:6443" in err.message
    assert "tools/bazel run //tools:cluster -- up" in err.hint
    assert "tools/bazel" not in translate(exc, action="x", hints=HOME).hint


def test_unreachable_server_fails_fast(tmp_path):
    cfg, port = unreachable_kubeconfig(tmp_path, namespace="team-a")  # nothing listens there
    kube = Kube.connect(kubeconfig=str(cfg), environ={})
    assert kube.default_namespace == "team-a" and kube.choice.source == "flag"
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable) as info:
        kube.ping()
    assert time.monotonic() - start < 10
    assert f"127.0.0.1:{port}" in info.value.message
    assert "connection refused" in info.value.message


def test_broken_kubeconfig(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(KubeconfigError) as info:
        Kube.connect(kubeconfig=str(cfg), environ={})
    assert info.value.exit_code == 2 and "--kubeconfig" in info.value.hint
