"""The launcher's connection to Kubernetes: `Kube.connect(kubeconfig=…)` loads the kubeconfig chosen by
`kubeconfig.resolve_kubeconfig` into the shared adapter (`dok.kube.Kube`: plain dicts in the API's JSON,
errors translated into `dok.kube.exceptions` with a hint and the CLI's exit code).

The hints speak to the person at the CLI (403 → ask a cluster admin or use another --namespace; unreachable
→ how to start the local cluster when that is the one configured). Calls are not retried here: the CLI says
at once when the cluster is down, and `RunHandle.wait` retries on its own time scale.
"""

from __future__ import annotations

from dok.kube import NO_RETRY, Access, Hints
from dok.kube import Kube as _Kube

from .kubeconfig import UP_HINT, KubeconfigChoice, refuse_if_local_cluster_down, resolve_kubeconfig

__all__ = ["Access", "Kube", "hints_for"]


def hints_for(choice: KubeconfigChoice) -> Hints:
    """The CLI user's hints; the local cluster's "unreachable" hint says how to start it."""
    unreachable = (f"is it running? `{UP_HINT.split(': ', 1)[1]}`" if choice.source == "local-cluster"
                   else "is it running, and is this the right kubeconfig/context?")
    return Hints(forbidden="ask a cluster admin for this permission, or use another --namespace",
                 unreachable=unreachable, unavailable="retry; check the cluster's health",
                 not_found="check the name and --namespace", invalid="fix the value it names")


class Kube(_Kube):
    """`dok.kube.Kube`, connected the launcher's way; `choice` says which kubeconfig and why."""

    choice: KubeconfigChoice | None = None

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None,
                environ: dict[str, str] | None = None) -> Kube:
        """Load the kubeconfig (see `kubeconfig.resolve_kubeconfig`); no API call is made yet."""
        choice = resolve_kubeconfig(kubeconfig, environ)
        kube = cls.from_kubeconfig(choice.path, context=context, hints=hints_for(choice), retry=NO_RETRY)
        refuse_if_local_cluster_down(choice, kube.host, environ)  # a down local cluster: exit 3, no traffic
        kube.choice = choice
        return kube
