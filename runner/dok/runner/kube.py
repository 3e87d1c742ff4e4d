"""Kubernetes access for the runner: a small adapter over the `kubernetes` client that speaks plain JSON dicts.

Only the calls the runner needs (pods get/list/create/delete, pods/log get), in one namespace, with:
- configuration from the pod's service account (in-cluster), falling back to KUBECONFIG for tests;
- retries with exponential backoff on transient failures (connection refused/reset, timeouts, HTTP 429 and
  5xx) for a bounded time, so a few seconds of API server restart do not fail a run;
- `ApiException` translated into `dok.runner.exceptions` (NotFound, Conflict, Forbidden, ApiUnavailable,
  KubernetesError) with a hint.
Every method blocks; async code calls them through `asyncio.to_thread` so the scheduler's loop never blocks.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dok.runner.exceptions import ApiUnavailable, Conflict, Forbidden, KubernetesError, NotFound

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({0, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter: first `initial` s, doubling up to `maximum` s, for `budget` s total."""

    initial: float = 0.2
    maximum: float = 3.0
    budget: float = 45.0
    request_timeout: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds per request


def _is_transient(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException
    import urllib3.exceptions

    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUS or exc.status is None
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError))


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _api_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body).get("message") or str(body)[:300]
        except (ValueError, AttributeError):
            return str(body)[:300]
    return str(getattr(exc, "reason", None) or exc)


def translate(exc: BaseException, what: str) -> KubernetesError:
    """One typed error with a hint for a failed API call described by `what` (e.g. 'create pod x')."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status, message = exc.status, _api_message(exc)
        if status == 404:
            return NotFound(f"{what}: not found ({message})", status=404, reason="NotFound")
        if status == 409:
            return Conflict(f"{what}: already exists ({message})", status=409, reason="AlreadyExists")
        if status in (401, 403):
            return Forbidden(f"{what}: forbidden ({message})", status=status, reason="Forbidden",
                             hint="the runner's service account needs pods create/get/list/watch/delete and "
                                  "pods/log get in this namespace; run `dok setup` (or check its Role)")
        if status == 422:
            return KubernetesError(f"{what}: rejected as invalid ({message})", status=422, reason="Invalid",
                                   hint="a worker setting (resources, image, env) is not valid Kubernetes")
        if status in TRANSIENT_STATUS or status is None:
            return ApiUnavailable(f"{what}: the API server kept failing (HTTP {status}: {message})",
                                  status=status, reason="Unavailable",
                                  hint="the cluster's API server is down or overloaded")
        return KubernetesError(f"{what}: HTTP {status} ({message})", status=status)
    return ApiUnavailable(f"{what}: cannot reach the Kubernetes API ({type(exc).__name__}: {exc})",
                          hint="the cluster's API server is down or unreachable from this pod")


class Kube:
    """Blocking pod operations in one namespace, retried and translated (see the module docstring)."""

    def __init__(self, *, namespace: str, api_client: Any = None, core_api: Any = None,
                 retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.namespace = namespace
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self._api_client = api_client
        self._core: Any = core_api  # a CoreV1Api (or a stand-in in tests); built lazily otherwise
        self._lock = threading.Lock()

    # -- configuration ----------------------------------------------------------------------------------
    def _api(self) -> Any:
        with self._lock:
            if self._core is None:
                from kubernetes import client

                self._core = client.CoreV1Api(self._api_client or new_api_client())
            return self._core

    # -- retry core -------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run `fn(core_v1_api)`, retrying transient failures within the retry budget."""
        deadline = self._clock() + self.retry.budget
        delay = self.retry.initial
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(self._api())
            except Exception as exc:  # noqa: BLE001 - translated below
                if not _is_transient(exc):
                    raise translate(exc, what) from None
                wait = _retry_after(exc) or delay * (0.75 + random.random() / 2)
                if self._clock() + wait > deadline:
                    raise translate(exc, f"{what} (gave up after {attempt} attempts)") from None
                logger.warning("%s: transient error (%s); retrying in %.1fs", what, _short(exc), wait)
                self._sleep(wait)
                delay = min(delay * 2, self.retry.maximum)

    def _json(self, response: Any) -> Any:
        data = response.data if hasattr(response, "data") else response
        return json.loads(data) if data else {}

    # -- pods -------------------------------------------------------------------------------------------
    def get_pod(self, name: str) -> dict[str, Any]:
        return self.call(f"get pod {self.namespace}/{name}", lambda api: self._json(api.read_namespaced_pod(
            name, self.namespace, _preload_content=False, _request_timeout=self.retry.request_timeout)))

    def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        body = self.call(f"list pods in {self.namespace} ({label_selector})",
                         lambda api: self._json(api.list_namespaced_pod(
                             self.namespace, label_selector=label_selector, _preload_content=False,
                             _request_timeout=self.retry.request_timeout)))
        return list(body.get("items") or [])

    def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create a pod. A 409 after a retried request whose first attempt did land is reported as Conflict;
        callers that know the pod is theirs (by labels) treat it as success."""
        name = manifest["metadata"]["name"]
        return self.call(f"create pod {self.namespace}/{name}", lambda api: self._json(api.create_namespaced_pod(
            self.namespace, manifest, _preload_content=False, _request_timeout=self.retry.request_timeout)))

    def delete_pod(self, name: str, *, grace_period_seconds: int = 1) -> bool:
        """Delete a pod; False if it was already gone (404 counts as success)."""
        try:
            self.call(f"delete pod {self.namespace}/{name}", lambda api: api.delete_namespaced_pod(
                name, self.namespace, grace_period_seconds=grace_period_seconds, propagation_policy="Background",
                _preload_content=False, _request_timeout=self.retry.request_timeout))
        except NotFound:
            return False
        return True

    def pod_events(self, name: str, *, kind: str = "Pod") -> list[dict[str, Any]]:
        """Events about one object, a pod unless `kind` says otherwise (best effort, no retries): [] if they
        cannot be read (e.g. no permission)."""
        try:
            response = self._api().list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={name},involvedObject.kind={kind}",
                _preload_content=False,
                _request_timeout=(3.0, 5.0))
            return list(self._json(response).get("items") or [])
        except Exception:  # noqa: BLE001 - diagnostics only
            return []

    def pod_log_tail(self, name: str, *, lines: int = 20) -> str:
        """The last `lines` lines of a pod's log, or '' if it cannot be read (best effort, no retries)."""
        try:
            response = self._api().read_namespaced_pod_log(
                name, self.namespace, tail_lines=lines, _preload_content=False, _request_timeout=(3.0, 5.0))
            return response.data.decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - diagnostics only
            return ""


def new_api_client() -> Any:
    """An ApiClient from the pod's service account, else from KUBECONFIG / ~/.kube/config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
        except Exception as exc:  # noqa: BLE001
            raise KubernetesError(f"no Kubernetes configuration: not in a pod and no usable kubeconfig ({exc})",
                                  hint="run inside the job pod, or set KUBECONFIG") from None
    configuration.retries = False  # our own backoff (Kube.call) handles transient failures
    return client.ApiClient(configuration)


def _short(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if status is not None else f"{type(exc).__name__}: {str(exc)[:120]}"
