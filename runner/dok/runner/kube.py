"""The runner's connection to Kubernetes: `dok.kube.Kube` with the runner's retry policy and hints.

The runner lives in the job pod: it connects with the pod's service account (falling back to KUBECONFIG
when run outside a pod, as tests do) and retries transient failures (connection refused/reset, timeouts,
HTTP 429 and 5xx) with exponential backoff for ~45 s, so an API server restart does not fail a run. Retries
are logged as warnings on this module's logger. Errors are `dok.kube.exceptions` (re-exported by
`dok.runner.exceptions`) with hints about the runner's service account.
"""

from __future__ import annotations

import logging

from dok.kube import Hints, Kube, RetryPolicy
from dok.kube.incluster import InClusterRest, LightFirst

logger = logging.getLogger(__name__)

RETRY = RetryPolicy(initial=0.2, maximum=3.0, budget=45.0)
HINTS = Hints(
    forbidden="the runner's service account needs pods create/get/list/watch/delete and pods/log get in this "
              "namespace; run `dok setup` (or check its Role)",
    unreachable="the cluster's API server is down or unreachable from this pod",
    unavailable="the cluster's API server is down or overloaded",
    invalid="a worker setting (resources, image, env) is not valid Kubernetes",
)


def connect() -> Kube | LightFirst:
    """The pod's service account (else KUBECONFIG), with the runner's retries and hints. In a pod, reads,
    pod lists, events, creates and patches go through the standard library first (`dok.kube.incluster`):
    a run whose work needs no worker pod never loads the official client (~0.3 CPU-s)."""
    light = InClusterRest.from_environ()
    full = lambda: Kube.in_cluster_or_env(retry=RETRY, hints=HINTS, log=logger)  # noqa: E731
    return full() if light is None else LightFirst(light, full=full)
