"""The Kubernetes adapter: the only module that calls the `kubernetes` client.

`Kube.connect(kubeconfig=…)` loads the kubeconfig chosen by `kubeconfig.resolve_kubeconfig`; every call
goes through `translate()`, which turns ApiException and connection errors into `dok.launcher.exceptions`
with a hint (403 → PermissionDenied naming the verb and resource, unreachable → ClusterUnreachable with
the server address and how to start the local cluster, …). Objects go in as manifest dicts and come back
as the client's models (snake_case attributes). Deletes treat 404 as success.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import (ApiUnavailable, ClusterUnreachable, ConfigError, InfrastructureError, LauncherError,
                         PermissionDenied, UsageError)
from .kubeconfig import UP_HINT, KubeconfigChoice, refuse_if_local_cluster_down, resolve_kubeconfig

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for ordinary calls
LOG_READ_TIMEOUT = 300.0       # seconds without a log line before a followed log stream is reopened


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
        if text.strip():
            return text.strip().splitlines()[0][:300]
    return str(getattr(exc, "reason", "") or exc).strip().splitlines()[0] if str(exc) else type(exc).__name__


def _is_connection_error(exc: BaseException) -> bool:
    import urllib3.exceptions as u3

    return isinstance(exc, (u3.MaxRetryError, u3.NewConnectionError, u3.ProtocolError, u3.TimeoutError,
                            u3.SSLError, ConnectionError, socket.timeout, socket.gaierror, ssl.SSLError,
                            TimeoutError))


def _connection_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host",
                   "certificate verify failed", "Connection reset"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text.split(": ", 1)[-1][:200] or type(exc).__name__


def translate_error(exc: BaseException, *, action: str, host: str | None = None,
                    local_cluster: bool = False) -> LauncherError:
    """The launcher error for an exception raised while doing `action` (e.g. "create Job dok-x")."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, LauncherError):
        return exc
    where = f" at {host}" if host else ""
    if isinstance(exc, ApiException):
        status = int(getattr(exc, "status", 0) or 0)
        message = _status_message(exc)
        if status == 401:
            return ConfigError(f"{action}: the cluster{where} rejected our credentials (401): {message}",
                               hint="check the kubeconfig's user (certificate or token)")
        if status == 403:
            return PermissionDenied(f"{action}: forbidden: {message}",
                                    hint="ask a cluster admin for this permission, or use another --namespace")
        if status == 404:
            return ConfigError(f"{action}: not found: {message}", hint="check the name and --namespace")
        if status == 409:
            return ConfigError(f"{action}: conflict: {message}", hint="the object already exists")
        if status in (400, 422):
            return UsageError(f"{action}: rejected by the API server: {message}", hint="fix the value it names")
        if status == 0 or status >= 500 or status == 429:
            return ApiUnavailable(f"{action}: API server error {status or ''}: {message}".replace("  ", " "),
                                  hint="retry; check the cluster's health")
        return InfrastructureError(f"{action}: HTTP {status}: {message}")
    if _is_connection_error(exc):
        reason = _connection_reason(exc)
        if "certificate" in reason or "ssl" in reason.lower():
            hint = ("the kubeconfig's CA or client certificate does not match the server (cluster recreated?); "
                    "use a fresh kubeconfig")
        elif local_cluster:
            hint = f"is it running? `{UP_HINT.split(': ', 1)[1]}`"
        else:
            hint = "is it running, and is this the right kubeconfig/context?"
        return ClusterUnreachable(f"cluster unreachable{where} ({action}: {reason})", hint=hint)
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, ConfigException):
        return ConfigError(f"invalid kubeconfig: {exc}", hint="fix the kubeconfig or pass --kubeconfig")
    return InfrastructureError(f"{action}: {type(exc).__name__}: {exc}")


def is_not_found(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException) and int(getattr(exc, "status", 0) or 0) == 404


def is_conflict(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException) and int(getattr(exc, "status", 0) or 0) == 409


@dataclass(frozen=True, kw_only=True)
class Access:
    """One permission: `verb` on `resource` (API `group`, optional `subresource`) in `namespace`."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str | None = None

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        res = f"{res}.{self.group}" if self.group else res
        return f"{self.verb} {res}" + (f" in namespace {self.namespace}" if self.namespace else "")


class Kube:
    """A connection to one cluster. Create with `Kube.connect()`; methods raise launcher errors."""

    def __init__(self, api_client: Any, *, choice: KubeconfigChoice, host: str,
                 default_namespace: str = "default", timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.choice = choice
        self.host = host
        self.default_namespace = default_namespace
        self.timeout = timeout
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.authz = client.AuthorizationV1Api(api_client)
        self.version_api = client.VersionApi(api_client)

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None,
                environ: dict[str, str] | None = None) -> Kube:
        """Load the kubeconfig (see `kubeconfig.resolve_kubeconfig`); no API call is made yet."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        choice = resolve_kubeconfig(kubeconfig, environ)
        cfg = client.Configuration()
        namespace = "default"
        try:
            if choice.path is None:
                config.load_incluster_config(client_configuration=cfg)
                ns_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
                with contextlib.suppress(OSError):
                    namespace = open(ns_file).read().strip() or namespace
            else:
                config.load_kube_config(config_file=str(choice.path), context=context, client_configuration=cfg,
                                        persist_config=False)
                with contextlib.suppress(Exception):
                    _, active = config.list_kube_config_contexts(config_file=str(choice.path))
                    if context:
                        contexts, _ = config.list_kube_config_contexts(config_file=str(choice.path))
                        active = next((c for c in contexts if c.get("name") == context), active)
                    namespace = (active or {}).get("context", {}).get("namespace") or namespace
        except ConfigException as exc:
            raise ConfigError(f"cannot use kubeconfig {choice.path}: {exc}",
                              hint="fix the file or pass another --kubeconfig") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read kubeconfig {choice.path}: {exc}") from exc
        refuse_if_local_cluster_down(choice, cfg.host, environ)  # a down local cluster: exit 3, no traffic
        cfg.retries = 1  # fail fast when the API server is down; callers that wait retry themselves
        return cls(client.ApiClient(cfg), choice=choice, host=cfg.host, default_namespace=namespace)

    # -- error translation ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except LauncherError:
            raise
        except Exception as exc:
            raise translate_error(exc, action=action, host=self.host,
                                  local_cluster=self.choice.source == "local-cluster") from exc

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.timeout)
        with self.translate(action):
            return fn(*args, **kwargs)

    def _call_or_none(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Like _call, but 404 → None."""
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise translate_error(exc, action=action, host=self.host,
                                  local_cluster=self.choice.source == "local-cluster") from exc

    # -- cluster --------------------------------------------------------------------------------------
    def ping(self) -> str:
        """The server's version (proves it is reachable and that we may talk to it)."""
        info = self._call("contact the API server", self.version_api.get_code)
        return str(getattr(info, "git_version", "") or "")

    def namespace_exists(self, namespace: str) -> bool | None:
        """True/False, or None when we may not read namespaces (then callers find out on create)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespace(namespace, _request_timeout=self.timeout)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 403:
                return None
            raise translate_error(exc, action=f"read namespace {namespace}", host=self.host) from exc
        except Exception as exc:
            raise translate_error(exc, action=f"read namespace {namespace}", host=self.host,
                                  local_cluster=self.choice.source == "local-cluster") from exc

    def can_i(self, access: Access) -> tuple[bool, str]:
        """SelfSubjectAccessReview: (allowed, reason)."""
        from kubernetes import client

        body = client.V1SelfSubjectAccessReview.from_dict({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {k: v for k, v in {
                "verb": access.verb, "resource": access.resource, "group": access.group,
                "subresource": access.subresource, "namespace": access.namespace}.items() if v}}})
        review = self._call(f"check permission {access}", self.authz.create_self_subject_access_review, body)
        status = review.status
        return bool(status and status.allowed), str(getattr(status, "reason", "") or "")

    # -- generic objects ------------------------------------------------------------------------------
    def create(self, manifest: Mapping[str, Any]) -> Any:
        """Create a Job, ServiceAccount, Role or RoleBinding from its manifest dict."""
        from kubernetes import client

        kind, ns, name = manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        model, fn = {
            "Job": (client.V1Job, self.batch.create_namespaced_job),
            "ServiceAccount": (client.V1ServiceAccount, self.core.create_namespaced_service_account),
            "Role": (client.V1Role, self.rbac.create_namespaced_role),
            "RoleBinding": (client.V1RoleBinding, self.rbac.create_namespaced_role_binding),
        }[kind]
        return self._call(f"create {kind} {ns}/{name}", fn, ns, model.from_dict(dict(manifest)))

    def read(self, kind: str, namespace: str, name: str) -> Any | None:
        fn = {"Job": self.batch.read_namespaced_job,
              "ServiceAccount": self.core.read_namespaced_service_account,
              "Role": self.rbac.read_namespaced_role,
              "RoleBinding": self.rbac.read_namespaced_role_binding,
              "Pod": self.core.read_namespaced_pod}[kind]
        return self._call_or_none(f"read {kind} {namespace}/{name}", fn, name, namespace)

    def replace(self, manifest: Mapping[str, Any]) -> Any:
        from kubernetes import client

        kind, ns, name = manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        model, fn = {"Role": (client.V1Role, self.rbac.replace_namespaced_role),
                     "RoleBinding": (client.V1RoleBinding, self.rbac.replace_namespaced_role_binding)}[kind]
        return self._call(f"update {kind} {ns}/{name}", fn, name, ns, model.from_dict(dict(manifest)))

    # -- jobs and pods ---------------------------------------------------------------------------------
    def list_jobs(self, namespace: str, selector: str) -> list[Any]:
        res = self._call(f"list Jobs in {namespace}", self.batch.list_namespaced_job, namespace,
                         label_selector=selector)
        return list(res.items or [])

    def list_pods(self, namespace: str, selector: str) -> list[Any]:
        res = self._call(f"list pods in {namespace}", self.core.list_namespaced_pod, namespace,
                         label_selector=selector)
        return list(res.items or [])

    def delete_job(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> None:
        """Delete a Job and (in the background) its pods; 404 counts as done."""
        from kubernetes import client

        body = client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=grace_period_seconds)
        self._call_or_none(f"delete Job {namespace}/{name}", self.batch.delete_namespaced_job, name, namespace,
                           body=body)

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> None:
        """Delete a pod; 404 counts as done."""
        from kubernetes import client

        body = client.V1DeleteOptions(grace_period_seconds=grace_period_seconds)
        self._call_or_none(f"delete pod {namespace}/{name}", self.core.delete_namespaced_pod, name, namespace,
                           body=body)

    def pod_events(self, namespace: str, pod_name: str) -> list[Any]:
        res = self._call(f"list events of pod {namespace}/{pod_name}", self.core.list_namespaced_event, namespace,
                         field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod_name}")
        return list(res.items or [])

    def pod_log(self, namespace: str, name: str, *, container: str | None = None,
                tail_lines: int | None = None) -> str:
        kwargs: dict[str, Any] = {"container": container} if container else {}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        return self._call(f"read log of pod {namespace}/{name}", self.core.read_namespaced_pod_log, name,
                          namespace, **kwargs) or ""

    def stream_pod_log(self, namespace: str, name: str, *, container: str | None = None,
                       since_seconds: int | None = None) -> Iterator[str]:
        """Follow a pod's log line by line until the container ends (or the connection drops)."""
        # A quiet log must not look like a dead connection for too long; the follower reconnects.
        kwargs: dict[str, Any] = {"follow": True, "_preload_content": False,
                                  "_request_timeout": (self.timeout[0], LOG_READ_TIMEOUT)}
        if container:
            kwargs["container"] = container
        if since_seconds:
            kwargs["since_seconds"] = since_seconds
        with self.translate(f"follow log of pod {namespace}/{name}"):
            resp = self.core.read_namespaced_pod_log(name, namespace, **kwargs)
        try:
            pending = b""
            with self.translate(f"follow log of pod {namespace}/{name}"):
                for chunk in resp.stream(4096, decode_content=True):
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        finally:
            with contextlib.suppress(Exception):
                resp.release_conn()
