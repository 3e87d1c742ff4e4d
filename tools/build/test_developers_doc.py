"""DEVELOPERS.md's "Job pod environment" is generated from the code: the table between the job-pod-env
markers must equal `render()` (RunSpec's settings that travel in the pod environment, the pod's downward-API
facts, and the variables the image and the runner define). When it fails, paste the printed block."""

from __future__ import annotations

import dataclasses
import pathlib

from dok.core.runspec import POD_FIELD_ENV, RunSpec, env_var
from dok.runner.config import BUNDLE_SHA256_ENV, SCHEDULER_HOST_ENV, TERMINATION_LOG_ENV

ROOT = pathlib.Path(__file__).resolve().parents[2]
if not (ROOT / "DEVELOPERS.md").is_file():  # under Bazel the file sits in the runfiles tree
    ROOT = pathlib.Path.cwd()
BEGIN = "<!-- job-pod-env:begin (generated: tools/build/test_developers_doc.py) -->"
END = "<!-- job-pod-env:end -->"


def render() -> str:
    rows = ["| variable | set by | meaning (default) |", "| --- | --- | --- |"]
    for f in dataclasses.fields(RunSpec):
        if not f.metadata["dok"].env:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = "a fresh UUID" if f.name == "identifier" else ("unset" if default is None else repr(default))
        rows.append(f"| `{env_var(f.name)}` | launcher (`RunSpec.to_env`) | RunSpec.{f.name} "
                    f"({f.metadata['dok'].kind}; {shown}) |")
    for name, path in POD_FIELD_ENV.items():
        rows.append(f"| `{name}` | launcher (downward API `{path}`) | the job pod's own |")
    rows.append(f"| `{BUNDLE_SHA256_ENV}` | builder (`ENV` in the image) | the bundle's sha256, checked on load |")
    rows.append(f"| `{TERMINATION_LOG_ENV}` | optional (runner) | where the final State goes "
                "('/dev/termination-log') |")
    rows.append(f"| `{SCHEDULER_HOST_ENV}` | optional (runner) | the scheduler's listen address ('0.0.0.0') |")
    return "\n".join(rows)


def documented() -> str:
    text = (ROOT / "DEVELOPERS.md").read_text()
    assert BEGIN in text and END in text, "DEVELOPERS.md lacks the job-pod-env markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_job_pod_environment_is_documented_from_runspec() -> None:
    expected = render()
    assert documented() == expected, f"regenerate DEVELOPERS.md's block:\n{BEGIN}\n{expected}\n{END}"


def test_every_variable_the_launcher_sets_is_documented() -> None:
    spec = RunSpec(image="img:1", namespace="ns", worker_resources={"limits": {"cpu": "1"}}, worker_nthreads=1,
                   max_worker_failures=1)
    names = {line.split("`")[1] for line in documented().splitlines() if line.startswith("| `")}
    assert set(spec.to_env()) | set(POD_FIELD_ENV) <= names
