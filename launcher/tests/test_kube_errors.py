"""The kubernetes adapter's error translation: every SDK failure becomes a launcher error with a hint."""

from __future__ import annotations

import socket
import time

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from dok.launcher.exceptions import (ClusterUnreachable, ConfigError, InfrastructureError, PermissionDenied,
                                     UsageError)
from dok.launcher.kube import Kube, translate_error


def api(status, message="nope"):
    return ApiException(status=status, reason="R", body='{"message": "%s"}' % message)


@pytest.mark.parametrize("status,cls,code", [(401, ConfigError, 2), (403, PermissionDenied, 2),
                                             (404, ConfigError, 2), (409, ConfigError, 2),
                                             (422, UsageError, 2), (500, InfrastructureError, 3),
                                             (503, InfrastructureError, 3)])
def test_api_statuses(status, cls, code):
    err = translate_error(api(status, "jobs.batch is forbidden"), action="create Job x")
    assert isinstance(err, cls)
    assert err.exit_code == code
    assert "create Job x" in err.message
    assert err.hint


def test_forbidden_keeps_server_message():
    err = translate_error(api(403, 'jobs.batch is forbidden: User "bob" cannot create'), action="create Job j")
    assert 'User "bob" cannot create' in err.message


def test_connection_refused_names_host_and_local_hint():
    exc = urllib3.exceptions.MaxRetryError(None, "/version", reason=ConnectionRefusedError("[Errno 111] Connection refused"))
    err = translate_error(exc, action="contact the API server", host="https://10.200.0.1:6443", local_cluster=True)
    assert isinstance(err, ClusterUnreachable) and err.exit_code == 3
    assert "https://10.200.0.1:6443" in err.message
    assert "tools/bazel run //tools:cluster -- up" in err.hint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast(tmp_path):
    port = _free_port()  # nothing listens there
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: team-a}}}}]
current-context: x
""")
    kube = Kube.connect(kubeconfig=str(cfg), environ={})
    assert kube.default_namespace == "team-a"
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable) as info:
        kube.ping()
    assert time.monotonic() - start < 10
    assert f"127.0.0.1:{port}" in info.value.message
    assert "connection refused" in info.value.message


def test_broken_kubeconfig(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(ConfigError):
        Kube.connect(kubeconfig=str(cfg), environ={})
