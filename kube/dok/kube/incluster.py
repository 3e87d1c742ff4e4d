"""The API server from inside a pod with the standard library only, for the few calls a runner makes first.

Importing the official `kubernetes` client takes ~0.3 CPU-seconds (its thousand model modules); a run whose
work needs no worker pod (the job pod's own worker, `job_worker_threads`) would spend that on its critical
path for a handful of reads. `LightFirst` answers `read`, `events`, `list_pods`, `create` and `patch` with
`InClusterRest` — HTTPS to the in-cluster API address with the pod's service-account token and CA, JSON in
and out, the same camelCase dicts as `Kube` — and creates the full `Kube` (retries, error translation,
everything else) only when a call needs it: any other method, or a light call that failed for a reason
other than 404 (read/patch: None, as `Kube` says) or 409 on create (`Conflict`, as `Kube` raises). A
failed light call is simply made again through `Kube`, so its retries and hints still apply.

    kube = LightFirst(InClusterRest.from_environ(), full=lambda: Kube.in_cluster_or_env(...))
    kube.read("Pod", ns, name)          # no `kubernetes` import in a pod
    kube.delete_pod(ns, name)           # the full client, created once
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from .exceptions import Conflict

__all__ = ["InClusterRest", "LightFirst", "LightCallFailed"]

Obj = dict[str, Any]
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
CA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
TIMEOUT = 10.0
# kind -> (API prefix, plural) for the kinds the light path serves
KINDS = {"Pod": ("api/v1", "pods"), "Job": ("apis/batch/v1", "jobs"), "Event": ("api/v1", "events")}


class LightCallFailed(Exception):
    """A light call that did not answer as expected (the caller makes it again through `Kube`)."""


class InClusterRest:
    """JSON REST calls with the pod's service account (see the module docstring). Thread-safe: one
    connection per call."""

    def __init__(self, *, host: str, port: int, token: str, context: ssl.SSLContext,
                 timeout: float = TIMEOUT) -> None:
        self.host, self.port, self.token, self.context, self.timeout = host, port, token, context, timeout

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, token_path: str = TOKEN_PATH,
                     ca_path: str = CA_PATH) -> InClusterRest | None:
        """The in-cluster API server, or None outside a pod (no service address, token or CA)."""
        environ = os.environ if environ is None else environ
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not os.path.isfile(token_path) or not os.path.isfile(ca_path):
            return None
        try:
            with open(token_path, encoding="utf-8") as f:
                token = f.read().strip()
            context = ssl.create_default_context(cafile=ca_path)
            return cls(host=host, port=int(port), token=token, context=context)
        except (OSError, ValueError, ssl.SSLError):
            return None

    # -- the calls ------------------------------------------------------------------------------------------
    def read(self, kind: str, namespace: str, name: str) -> Obj | None:
        status, body = self._call("GET", _path(kind, namespace, name))
        return None if status == 404 else _ok(status, body)

    def events(self, namespace: str, name: str, *, kind: str = "Pod") -> list[Obj]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        status, body = self._call("GET", _path("Event", namespace), query={"fieldSelector": selector})
        return list(_ok(status, body).get("items") or [])

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        status, body = self._call("GET", _path("Pod", namespace), query={"labelSelector": selector})
        return list(_ok(status, body).get("items") or [])

    def create(self, manifest: Mapping[str, Any]) -> Obj:
        kind, ns = manifest["kind"], manifest["metadata"]["namespace"]
        status, body = self._call("POST", _path(kind, ns), body=dict(manifest))
        if status == 409:
            raise Conflict(f"create {kind} {ns}/{manifest['metadata']['name']}: already exists", status=409)
        return _ok(status, body)

    def patch(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> Obj | None:
        status, answer = self._call("PATCH", _path(kind, namespace, name), body=dict(body),
                                    content_type="application/merge-patch+json")
        return None if status == 404 else _ok(status, answer)

    def _call(self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None,
              content_type: str = "application/json") -> tuple[int, Any]:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            reply = conn.getresponse()
            raw = reply.read()
        except (OSError, http.client.HTTPException) as exc:
            raise LightCallFailed(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        try:
            return reply.status, json.loads(raw) if raw else {}
        except ValueError as exc:
            raise LightCallFailed(f"{method} {path}: not JSON ({reply.status})") from exc


def _path(kind: str, namespace: str, name: str | None = None) -> str:
    if kind not in KINDS:
        raise LightCallFailed(f"kind {kind} is not served by the light client")
    prefix, plural = KINDS[kind]
    path = f"/{prefix}/namespaces/{urllib.parse.quote(namespace)}/{plural}"
    return path + (f"/{urllib.parse.quote(name)}" if name else "")


def _ok(status: int, body: Any) -> Obj:
    if not 200 <= status < 300 or not isinstance(body, dict):
        raise LightCallFailed(f"HTTP {status}: {str(body)[:200]}")
    return body


class LightFirst:
    """`Kube`'s interface: the light calls through `InClusterRest` when there is one, everything else (and
    any light call that failed) through the full `Kube`, created on first need (see the module docstring)."""

    LIGHT = ("read", "events", "list_pods", "create", "patch")

    def __init__(self, light: InClusterRest | None, *, full: Callable[[], Any]) -> None:
        self.light = light
        self._make_full = full
        self._full: Any = None
        self._lock = threading.Lock()

    @property
    def full(self) -> Any:
        """The full `Kube` (created once, on first use)."""
        with self._lock:
            if self._full is None:
                self._full = self._make_full()
            return self._full

    @property
    def loaded(self) -> bool:
        """Whether the full client was needed so far."""
        return self._full is not None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full, name)

    def _light_or_full(self, name: str, *args: Any, **kwargs: Any) -> Any:
        light_kwargs = {k: v for k, v in kwargs.items() if k != "quick"}
        if self.light is not None:
            try:
                return getattr(self.light, name)(*args, **light_kwargs)
            except LightCallFailed:
                pass
        return getattr(self.full, name)(*args, **kwargs)

    def read(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._light_or_full("read", kind, namespace, name)

    def events(self, namespace: str, name: str, *, kind: str = "Pod", quick: bool = False) -> list[Obj]:
        return self._light_or_full("events", namespace, name, kind=kind, quick=quick)

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        return self._light_or_full("list_pods", namespace, selector)

    def create(self, manifest: Mapping[str, Any]) -> Obj:
        return self._light_or_full("create", manifest)

    def patch(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> Obj | None:
        return self._light_or_full("patch", kind, namespace, name, body)
