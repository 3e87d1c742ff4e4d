"""A scripted stand-in for the launcher's `Kube` (dok.kube's adapter): pods and Jobs as the API's JSON dicts
(what `dok.kube` returns), a script of states."""

from __future__ import annotations

from dok.core import labels

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def pod(name, *, component="job", phase="Pending", waiting=None, terminated=None, deleting=False, uid=None,
        unschedulable=None, identifier=ID):
    state = {}
    if waiting:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    if terminated:
        state["terminated"] = {"reason": terminated.get("reason", "Completed"), "message": terminated.get("message"),
                               "exitCode": terminated.get("exit_code", 0), "signal": terminated.get("signal")}
    if phase == "Running" and not state:
        state["running"] = {"startedAt": "2026-01-01T00:00:00Z"}
    conditions = []
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable})
    metadata = {"name": name, "uid": uid or f"uid-{name}", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": labels.run_labels(identifier=identifier, flow_name="f", component=component)}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return {"metadata": metadata, "spec": {"containers": [{"name": "runner", "image": "img:1"}]},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "runner", "state": state}]}}


def job(name="dok-f-0f8fad5b", identifier=ID, conditions=()):
    return {"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": labels.run_labels(identifier=identifier, flow_name="f", component="job")},
            "status": {"conditions": list(conditions), "active": 1}}


def failed_condition(reason="DeadlineExceeded", message="Job was active longer than specified deadline"):
    return {"type": "Failed", "status": "True", "reason": reason, "message": message}


class FakeKube:
    """`script` is a list of (jobs, pods) snapshots, one per poll; the last one repeats."""

    host = "https://fake:6443"

    def __init__(self, script):
        self.script = list(script)
        self.polls = 0
        self.deleted_pods: list[str] = []
        self.deleted_jobs: list[str] = []
        self.cleaned = False
        self.secrets: list[dict] = []          # dok's pull Secrets of the run (by label)
        self.deleted_secrets: list[str] = []
        self.log_lines = ["hello from the runner", "[dok] scaling to 2 workers"]
        self.job_events = [{"type": "Warning", "reason": "FailedCreate",
                            "message": 'serviceaccount "dok-runner" not found'}]

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
        return True

    def list_custom(self, group, version, plural, namespace, selector):
        return []

    def delete_job(self, namespace, name, grace_period_seconds=None):
        self.deleted_jobs.append(name)
        self.cleaned = True
        return True

    def pod_log(self, namespace, name, container=None, tail_lines=None, quick=False):
        return "\n".join(self.log_lines)

    def stream_pod_log(self, namespace, name, container=None, since_seconds=None):
        yield from self.log_lines

    def list(self, kind, namespace, selector):  # noqa: A003 - the adapter's name
        return [dict(s) for s in self.secrets] if kind == "Secret" else []

    def delete(self, kind, namespace, name, grace_period_seconds=None):
        self.secrets = [s for s in self.secrets if s["metadata"]["name"] != name]
        self.deleted_secrets.append(name)
        return True

    def events(self, namespace, name, kind="Pod", quick=False):
        return list(self.job_events) if kind == "Job" else []
