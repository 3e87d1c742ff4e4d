"""dok.kube: the one Kubernetes seam of the launcher and the runner.

- `Kube` (`client`): the adapter — plain dicts in the API's JSON in and out, request timeouts, retries
  (`retry.RetryPolicy`, on tenacity), every failure translated (`errors.translate`) into
  `exceptions.KubeError` subclasses with a hint and an exit code;
- `PortForward` (`portforward`): a local port relayed to a pod's port through the API server;
- `pod_snapshot` (`pods`): a pod (and its events) read into a typed `PodSnapshot` that policies decide from;
  `end_cause` (`causes`): why a pod ended early (OOMKilled, Evicted, Preempted, Deleted, ImagePull, …).
core has no Kubernetes code; builder, launcher and runner never import each other's insides, so both users
of the cluster share this package (Bazel visibility: launcher, runner, e2e, tools).
"""

from __future__ import annotations

from .causes import CAUSES, end_cause
from .client import Access, Kube
from .errors import Hints, is_transient, translate
from .exceptions import (ApiUnavailable, ClusterUnreachable, Conflict, Forbidden, Invalid, KubeconfigError, KubeError,
                         NotFound, Unauthorized)
from .portforward import PodNotRunning, PortForward, check_forwardable
from .pods import ContainerSnapshot, PodSnapshot, created_text, labels_of, name_of, pod_snapshot
from .retry import NO_RETRY, RetryPolicy

__all__ = [
    "Access", "ApiUnavailable", "CAUSES", "ClusterUnreachable", "Conflict", "ContainerSnapshot", "Forbidden", "Hints",
    "Invalid", "Kube", "KubeError", "KubeconfigError", "NO_RETRY", "NotFound", "PodNotRunning", "PodSnapshot",
    "PortForward", "RetryPolicy", "Unauthorized", "check_forwardable", "created_text", "end_cause", "is_transient",
    "labels_of", "name_of", "pod_snapshot", "translate",
]
