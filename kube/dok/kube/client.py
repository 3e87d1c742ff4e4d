"""The Kubernetes adapter of dok: the only place that calls the `kubernetes` client.

`Kube` speaks plain dicts in the API's own JSON (camelCase keys, timestamps as RFC 3339 strings): manifests
go in as dicts, objects come back as dicts (`kube.pods.pod_snapshot` reads pods). Every call
- has a request timeout, and is retried per the adapter's `RetryPolicy` (`dok.kube.retry`, tenacity) while
  its failure is transient (connection errors, 429, 5xx): the launcher fails fast (no retries; its watch
  loop retries on its own time scale), the runner retries for ~45 s so an API server restart does not end
  a run;
- raises `dok.kube.exceptions` errors, translated by `dok.kube.errors.translate` with the caller's `Hints`;
- deletes treat 404 as success (they return False when the object was already gone).
Connect with `Kube.from_kubeconfig(path)` (None: in-cluster) or `Kube.in_cluster_or_env()` (the runner).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import retry as _retry
from .errors import Hints, api_status, translate
from .exceptions import Forbidden, KubeconfigError, NotFound
from .retry import NO_RETRY, RetryPolicy

Obj = dict[str, Any]

LOG_READ_TIMEOUT = 300.0            # seconds without a log line before a followed log stream is reopened
QUICK_TIMEOUT = (3.0, 5.0)          # best-effort diagnostics: one short attempt
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
logger = logging.getLogger(__name__)


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


def _load(path: Path | None, context: str | None) -> tuple[Any, str]:
    """(client Configuration, the context's namespace or "default"); path None = in-cluster."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    namespace = "default"
    try:
        if path is None:
            config.load_incluster_config(client_configuration=cfg)
            with contextlib.suppress(OSError):
                namespace = Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or namespace
        else:
            config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg,
                                    persist_config=False)
            with contextlib.suppress(Exception):
                contexts, active = config.list_kube_config_contexts(config_file=str(path))
                if context:
                    active = next((c for c in contexts if c.get("name") == context), active)
                namespace = (active or {}).get("context", {}).get("namespace") or namespace
    except ConfigException as exc:
        where = f"kubeconfig {path}" if path is not None else "the in-cluster configuration"
        raise KubeconfigError(f"cannot use {where}: {exc}", hint="fix the file or pass another --kubeconfig") from exc
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    cfg.retries = False  # one retry policy: ours (dok.kube.retry), not urllib3's
    return cfg, namespace


class Kube:
    """A connection to one cluster; see the module docstring. Methods block (async code uses to_thread)."""

    def __init__(self, api_client: Any = None, *, host: str = "", default_namespace: str = "default",
                 hints: Hints = Hints(), retry: RetryPolicy = NO_RETRY, log: logging.Logger = logger,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 core: Any = None, batch: Any = None, rbac: Any = None, authz: Any = None,
                 version: Any = None, custom: Any = None) -> None:
        self.api_client = api_client
        self.host = host
        self.default_namespace = default_namespace
        self.hints = hints
        self.retry = retry
        self.log = log
        self._sleep, self._clock = sleep, clock
        if api_client is not None:
            from kubernetes import client

            core = core or client.CoreV1Api(api_client)
            batch = batch or client.BatchV1Api(api_client)
            rbac = rbac or client.RbacAuthorizationV1Api(api_client)
            authz = authz or client.AuthorizationV1Api(api_client)
            version = version or client.VersionApi(api_client)
            custom = custom or client.CustomObjectsApi(api_client)
        self.core, self.batch, self.rbac, self.authz, self.version_api = core, batch, rbac, authz, version
        self.custom = custom

    # -- connecting -------------------------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, path: Path | str | None, *, context: str | None = None, **kwargs: Any) -> Kube:
        """Load a kubeconfig file (None: the pod's service account); no API call is made yet."""
        from kubernetes import client

        cfg, namespace = _load(Path(path) if path is not None else None, context)
        return cls(client.ApiClient(cfg), host=cfg.host, default_namespace=namespace, **kwargs)

    @classmethod
    def in_cluster_or_env(cls, **kwargs: Any) -> Kube:
        """The pod's service account, else $KUBECONFIG / ~/.kube/config (tests run the runner outside a pod)."""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            with contextlib.suppress(KubeconfigError):
                return cls.from_kubeconfig(None, **kwargs)
        candidates = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        candidates.append(os.path.expanduser("~/.kube/config"))
        existing = next((p for p in candidates if os.path.isfile(p)), None)
        if existing is None:
            raise KubeconfigError("no Kubernetes configuration: not in a pod and no usable kubeconfig",
                                  hint="run inside the job pod, or set KUBECONFIG")
        return cls.from_kubeconfig(existing, **kwargs)

    # -- the one way to call ----------------------------------------------------------------------------
    def call(self, action: str, fn: Callable[..., Any], *args: Any, quick: bool = False, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` with a request timeout, retried and translated; `quick`: one short attempt.
        The raw response is returned (see `request` for decoded JSON)."""
        policy = NO_RETRY if quick else self.retry
        kwargs.setdefault("_request_timeout", QUICK_TIMEOUT if quick else policy.request_timeout)
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            return fn(*args, **kwargs)

        def on_retry(exc: BaseException, wait: float, n: int) -> None:
            self.log.warning("%s: transient error (%s); retrying in %.1fs", action, _short(exc), wait)

        try:
            return _retry.call(attempt, policy=policy, on_retry=on_retry, sleep=self._sleep, clock=self._clock)
        except Exception as exc:  # noqa: BLE001 - translated
            what = f"{action} (gave up after {attempts} attempts)" if attempts > 1 else action
            raise translate(exc, action=what, host=self.host, hints=self.hints) from exc

    def request(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        """`call`, asking for the raw JSON and returning it decoded (a dict in the API's camelCase)."""
        kwargs.setdefault("_preload_content", False)
        return self._decode(self.call(action, fn, *args, **kwargs))

    def _decode(self, response: Any) -> Obj:
        if response is None:
            return {}
        if isinstance(response, Mapping):
            return dict(response)
        data = getattr(response, "data", None)
        if isinstance(data, (bytes, str)):
            return json.loads(data) if data else {}
        if self.api_client is not None:  # a model (a caller asked for preloaded content)
            return self.api_client.sanitize_for_serialization(response)
        raise TypeError(f"cannot decode {type(response).__name__}")

    def _or_none(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj | None:
        try:
            return self.request(action, fn, *args, **kwargs)
        except NotFound:
            return None

    # -- cluster ----------------------------------------------------------------------------------------
    def ping(self) -> str:
        """The server's version (proves it is reachable and that we may talk to it)."""
        return str(self.request("contact the API server", self.version_api.get_code).get("gitVersion") or "")

    def namespace_exists(self, namespace: str) -> bool | None:
        """True/False, or None when we may not read namespaces (then callers find out on create)."""
        try:
            return self._or_none(f"read namespace {namespace}", self.core.read_namespace, namespace) is not None
        except Forbidden:
            return None

    def can_i(self, access: Access) -> tuple[bool, str]:
        """SelfSubjectAccessReview: (allowed, reason)."""
        attributes = {k: v for k, v in {"verb": access.verb, "resource": access.resource, "group": access.group,
                                        "subresource": access.subresource, "namespace": access.namespace}.items()
                      if v}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes}}
        review = self.request(f"check permission {access}", self.authz.create_self_subject_access_review, body)
        status = review.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def can_service_account(self, access: Access, *, service_account: str) -> tuple[bool, str]:
        """SubjectAccessReview for ServiceAccount `service_account` of `access.namespace`: (allowed, reason).
        The caller needs `create subjectaccessreviews` (Forbidden otherwise)."""
        ns = access.namespace or "default"
        attributes = {k: v for k, v in {"verb": access.verb, "resource": access.resource, "group": access.group,
                                        "subresource": access.subresource, "namespace": ns}.items() if v}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"resourceAttributes": attributes, "user": f"system:serviceaccount:{ns}:{service_account}",
                         "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]}}
        review = self.request(f"check permission {access} of service account {service_account}",
                              self.authz.create_subject_access_review, body)
        status = review.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    # -- objects ----------------------------------------------------------------------------------------
    def _api(self, verb: str, kind: str) -> Callable[..., Any]:
        apis = {"Job": (self.batch, "job"), "Pod": (self.core, "pod"),
                "ServiceAccount": (self.core, "service_account"), "Role": (self.rbac, "role"),
                "RoleBinding": (self.rbac, "role_binding"), "Event": (self.core, "event"),
                "Secret": (self.core, "secret")}
        if kind not in apis:
            raise ValueError(f"dok.kube does not handle kind {kind!r}")
        api, noun = apis[kind]
        return getattr(api, f"{verb}_namespaced_{noun}")

    def create(self, manifest: Mapping[str, Any]) -> Obj:
        """Create a Job, Pod, ServiceAccount, Role, RoleBinding or Secret from its manifest. A retried create whose
        first attempt landed ends in Conflict: callers that know the object is theirs treat that as success."""
        kind, ns, name = manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        return self.request(f"create {kind} {ns}/{name}", self._api("create", kind), ns, dict(manifest))

    def read(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        return self._or_none(f"read {kind} {namespace}/{name}", self._api("read", kind), name, namespace)

    def replace(self, manifest: Mapping[str, Any]) -> Obj:
        kind, ns, name = manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        return self.request(f"update {kind} {ns}/{name}", self._api("replace", kind), name, ns, dict(manifest))

    def patch(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> Obj | None:
        """Merge `body` into the object (e.g. {"spec": {"ttlSecondsAfterFinished": 600}}); None when it is gone."""
        return self._or_none(f"patch {kind} {namespace}/{name}", self._api("patch", kind), name, namespace, dict(body))

    def delete(self, kind: str, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> bool:
        """Delete (dependents in the background); False when it was already gone (404 counts as done)."""
        body: Obj = {"propagationPolicy": "Background"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        kwargs: Obj = {"grace_period_seconds": grace_period_seconds} if grace_period_seconds is not None else {}
        found = self._or_none(f"delete {kind} {namespace}/{name}", self._api("delete", kind), name, namespace,
                              body=body, propagation_policy="Background", **kwargs)
        return found is not None

    def list(self, kind: str, namespace: str, selector: str) -> list[Obj]:
        plural = {"Job": "Jobs", "Pod": "pods"}.get(kind, kind + "s")
        body = self.request(f"list {plural} in {namespace}", self._api("list", kind), namespace,
                            label_selector=selector)
        return list(body.get("items") or [])

    # -- the shapes callers use most --------------------------------------------------------------------
    def list_jobs(self, namespace: str, selector: str) -> list[Obj]:
        return self.list("Job", namespace, selector)

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        return self.list("Pod", namespace, selector)

    def delete_job(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> bool:
        return self.delete("Job", namespace, name, grace_period_seconds=grace_period_seconds)

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> bool:
        return self.delete("Pod", namespace, name, grace_period_seconds=grace_period_seconds)

    def events(self, namespace: str, name: str, *, kind: str = "Pod", quick: bool = False) -> list[Obj]:
        """Events about one object (a pod unless `kind` says otherwise), oldest first as the API lists them."""
        body = self.request(f"list events of {kind} {namespace}/{name}", self.core.list_namespaced_event, namespace,
                            field_selector=f"involvedObject.kind={kind},involvedObject.name={name}", quick=quick)
        return list(body.get("items") or [])

    # -- port-forward -------------------------------------------------------------------------------------
    def open_port_forward(self, namespace: str, pod: str, port: int) -> Any:
        """One port-forward stream to `port` of `pod` through the API server: an object with `socket(port)`
        (a socket relayed to the pod's port) and `error(port)`; see `dok.kube.portforward.PortForward`."""
        from kubernetes import client
        from kubernetes.stream import portforward

        action = f"port-forward to pod {namespace}/{pod}:{port}"
        _quiet_proxy_thread_ends()
        # kubernetes.stream swaps the ApiClient's `request` for a websocket one while it connects: on the shared
        # client, a call made meanwhile by another thread (a poll, another stream) would go out as a websocket
        # request and fail ("Missing required parameter `ports`"), or restore the wrong method. Each stream
        # gets an ApiClient of its own (same configuration) so nothing else is touched.
        core = self.core
        if self.api_client is not None:
            from kubernetes import client

            core = client.CoreV1Api(client.ApiClient(self.api_client.configuration))
        try:
            return portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, action=action, host=self.host, hints=self.hints) from exc
    # -- custom resources (e.g. the dask-kubernetes operator's) ------------------------------------------
    def missing_resources(self, group: str, version: str, plurals: list[str]) -> list[str]:
        """Which of `plurals` the API group/version does not serve (discovery; any authenticated user may ask):
        all of them when the group is unknown (its CRDs are not installed)."""
        try:
            body = self.request(f"discover {group}/{version}", self.custom.get_api_resources, group, version)
        except NotFound:
            return list(plurals)
        served = {r.get("name") for r in body.get("resources") or []}
        return [p for p in plurals if p not in served]

    def create_custom(self, group: str, version: str, plural: str, manifest: Mapping[str, Any]) -> Obj:
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        return self.request(f"create {manifest['kind']} {ns}/{name}", self.custom.create_namespaced_custom_object,
                            group, version, ns, plural, dict(manifest))

    def list_custom(self, group: str, version: str, plural: str, namespace: str, selector: str) -> list[Obj]:
        body = self.request(f"list {plural} in {namespace}", self.custom.list_namespaced_custom_object, group,
                            version, namespace, plural, label_selector=selector)
        return list(body.get("items") or [])

    def delete_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> bool:
        """Delete (dependents in the background); False when it was already gone."""
        found = self._or_none(f"delete {plural} {namespace}/{name}", self.custom.delete_namespaced_custom_object,
                              group, version, namespace, plural, name, body={"propagationPolicy": "Background"})
        return found is not None

    # -- logs -------------------------------------------------------------------------------------------
    def pod_log(self, namespace: str, name: str, *, container: str | None = None, tail_lines: int | None = None,
                quick: bool = False) -> str:
        kwargs: Obj = {"_preload_content": False}
        if container:
            kwargs["container"] = container
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        response = self.call(f"read log of pod {namespace}/{name}", self.core.read_namespaced_pod_log, name,
                             namespace, quick=quick, **kwargs)
        data = getattr(response, "data", response)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")

    def stream_pod_log(self, namespace: str, name: str, *, container: str | None = None,
                       since_seconds: int | None = None) -> Iterator[str]:
        """Follow a pod's log line by line until the container ends (or the connection drops)."""
        # A quiet log must not look like a dead connection for too long; the follower reconnects.
        kwargs: Obj = {"follow": True, "_preload_content": False,
                       "_request_timeout": (self.retry.request_timeout[0], LOG_READ_TIMEOUT)}
        if container:
            kwargs["container"] = container
        if since_seconds:
            kwargs["since_seconds"] = since_seconds
        action = f"follow log of pod {namespace}/{name}"
        response = self.call(action, self.core.read_namespaced_pod_log, name, namespace, **kwargs)
        try:
            pending = b""
            try:
                for chunk in response.stream(4096, decode_content=True):
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        yield line.decode(errors="replace")
            except Exception as exc:  # noqa: BLE001 - translated
                raise translate(exc, action=action, host=self.host, hints=self.hints) from exc
            if pending:
                yield pending.decode(errors="replace")
        finally:
            with contextlib.suppress(Exception):
                response.release_conn()


def _short(exc: BaseException) -> str:
    status = api_status(exc)
    return f"HTTP {status}" if status is not None else f"{type(exc).__name__}: {str(exc)[:120]}"


_PROXY_THREAD = "Kubernetes port forward proxy"  # kubernetes.stream.ws_client names its relay threads so
_hook_lock = threading.Lock()
_hook_installed = False


def _quiet_proxy_thread_ends() -> None:
    """kubernetes.stream relays each forwarded port in a thread of its own; when the pod's side closes while
    it sends (the runner exited, the pod ended) that thread dies with an SSL/socket error and Python prints
    its traceback. The stream's end is already seen by the reader (`PortForward`): such errors are dropped,
    every other thread's exception still goes to the previous hook."""
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            name = getattr(args.thread, "name", "") or ""
            if name.startswith(_PROXY_THREAD) and isinstance(args.exc_value, OSError):
                return
            previous(args)

        threading.excepthook = hook
        _hook_installed = True
