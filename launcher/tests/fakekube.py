"""A scripted stand-in for `dok.launcher.kube.Kube`: pods and Jobs as simple objects, a script of states."""

from __future__ import annotations

from types import SimpleNamespace as NS

from dok.core import labels

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def pod(name, *, component="job", phase="Pending", waiting=None, terminated=None, deleting=False, uid=None,
        unschedulable=None, identifier=ID):
    state = NS(waiting=None, terminated=None, running=None)
    if waiting:
        state.waiting = NS(reason=waiting[0], message=waiting[1])
    if terminated:
        state.terminated = NS(reason=terminated.get("reason", "Completed"), message=terminated.get("message"),
                              exit_code=terminated.get("exit_code", 0), signal=terminated.get("signal"))
    conditions = []
    if unschedulable:
        conditions.append(NS(type="PodScheduled", status="False", reason="Unschedulable", message=unschedulable))
    return NS(
        metadata=NS(name=name, uid=uid or f"uid-{name}", creation_timestamp=1,
                    deletion_timestamp="now" if deleting else None,
                    labels=labels.run_labels(identifier=identifier, flow_name="f", component=component)),
        spec=NS(containers=[NS(image="img:1")]),
        status=NS(phase=phase, conditions=conditions,
                  container_statuses=[NS(name="runner", state=state)]),
    )


def job(name="dok-f-0f8fad5b", identifier=ID, conditions=()):
    return NS(metadata=NS(name=name, labels=labels.run_labels(identifier=identifier, flow_name="f", component="job"),
                          creation_timestamp=1, deletion_timestamp=None),
              status=NS(conditions=list(conditions), active=1))


class FakeKube:
    """`script` is a list of (jobs, pods) snapshots, one per poll; the last one repeats."""

    host = "https://fake:6443"

    def __init__(self, script):
        self.script = list(script)
        self.polls = 0
        self.deleted_pods: list[str] = []
        self.deleted_jobs: list[str] = []
        self.cleaned = False
        self.log_lines = ["hello from the runner", "[dok] scaling to 2 workers"]

    def _snapshot(self):
        if self.cleaned:
            return [], []
        return self.script[min(self.polls, len(self.script) - 1)]

    def list_pods(self, namespace, selector):
        jobs, pods = self._snapshot()
        self.polls += 1
        return list(pods)

    def list_jobs(self, namespace, selector):
        jobs, pods = self._snapshot()
        return list(jobs)

    def delete_pod(self, namespace, name, grace_period_seconds=None):
        self.deleted_pods.append(name)

    def delete_job(self, namespace, name, grace_period_seconds=None):
        self.deleted_jobs.append(name)
        self.cleaned = True

    def pod_log(self, namespace, name, container=None, tail_lines=None):
        return "\n".join(self.log_lines)

    def stream_pod_log(self, namespace, name, container=None, since_seconds=None):
        yield from self.log_lines

    def _call(self, action, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    @property
    def core(self):
        return NS(list_namespaced_event=lambda *a, **k: NS(items=[
            NS(type="Warning", reason="FailedCreate", message='serviceaccount "dok-runner" not found')]))
