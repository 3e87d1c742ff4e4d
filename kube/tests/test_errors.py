"""One translation of client failures: each becomes a dok.kube error with the action, the server's message,
a hint from the caller's `Hints`, and the exit code the CLI uses (2: fix something, 3: the platform)."""

from __future__ import annotations

import urllib3
import pytest
from kubernetes.client.exceptions import ApiException

from dok.kube import errors
from dok.kube.exceptions import (ApiUnavailable, ClusterUnreachable, Conflict, Forbidden, Invalid, KubeError,
                                 NotFound, Unauthorized)


def api(status, message="nope", headers=None):
    exc = ApiException(status=status, reason="R")
    exc.body = '{"message": "%s"}' % message
    exc.headers = headers
    return exc


@pytest.mark.parametrize("status,cls,code,text", [
    (401, Unauthorized, 2, "rejected our credentials"), (403, Forbidden, 2, "forbidden"),
    (404, NotFound, 2, "not found"), (409, Conflict, 2, "already exists"), (400, Invalid, 2, "HTTP 400"),
    (422, Invalid, 2, "invalid"), (500, ApiUnavailable, 3, "HTTP 500"), (503, ApiUnavailable, 3, "HTTP 503"),
    (429, ApiUnavailable, 3, "HTTP 429"), (418, KubeError, 3, "HTTP 418"),
])
def test_api_statuses(status, cls, code, text):
    err = errors.translate(api(status, "the message"), action="create Job ns/x")
    assert type(err) is cls and err.exit_code == code
    assert "create Job ns/x" in err.message and "the message" in err.message and text in err.message
    assert err.status == status
    assert err.hint or cls is KubeError


def test_hints_come_from_the_caller():
    hints = errors.Hints(forbidden="the runner's service account needs pods create", invalid="fix the worker")
    assert errors.translate(api(403), action="a", hints=hints).hint == "the runner's service account needs pods create"
    assert errors.translate(api(422), action="a", hints=hints).hint == "fix the worker"
    assert "service account" in str(errors.translate(api(403), action="a", hints=hints))  # str shows the hint


def test_forbidden_keeps_server_message():
    err = errors.translate(api(403, 'jobs.batch is forbidden: User \\"bob\\" cannot create'), action="create Job j")
    assert 'User "bob" cannot create' in err.message


def test_connection_refused_names_host_and_hint():
    exc = urllib3.exceptions.MaxRetryError(None, "/version", reason=ConnectionRefusedError("[Errno 111] Connection refused"))
    err = errors.translate(exc, action="contact the API server", host="https://10.200.0.1:6443",
                           hints=errors.Hints(unreachable="start it"))
    assert isinstance(err, ClusterUnreachable) and err.exit_code == 3
    assert "https://10.200.0.1:6443" in err.message and "connection refused" in err.message
    assert err.hint == "start it"


def test_certificate_mismatch_is_not_transient_and_says_so():
    exc = urllib3.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert not errors.is_transient(exc)
    assert "fresh kubeconfig" in errors.translate(exc, action="x").hint


@pytest.mark.parametrize("exc,transient", [
    (api(503), True), (api(429), True), (api(0), True), (api(404), False), (api(403), False),
    (urllib3.exceptions.NewConnectionError(None, "Connection refused"), True), (ConnectionResetError(), True),
    (ValueError("x"), False),
])
def test_transient(exc, transient):
    assert errors.is_transient(exc) is transient


def test_retry_after_header():
    assert errors.retry_after(api(429, headers={"Retry-After": "2"})) == 2.0
    assert errors.retry_after(api(429)) is None


def test_kube_errors_pass_through():
    original = NotFound("read pod x: not found")
    assert errors.translate(original, action="other") is original
