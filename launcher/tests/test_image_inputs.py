"""`--python-dependency`, `--file`, `--env-var`: parsed on run and build, added to the flow's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dok.core import DaskOnKubernetesEnvironment
from dok.launcher import image_inputs
from dok.launcher.cli import build_parser
from dok.launcher.exceptions import UsageError


def _args(*extra: str, command: str = "build"):
    return build_parser().parse_args([command, "flow.py", *extra])


@pytest.mark.parametrize("command", ["run", "build"])
def test_inputs_are_added_to_the_environment(tmp_path: Path, command: str) -> None:
    src = tmp_path / "lib.py"
    src.write_text("X = 1\n")
    env = DaskOnKubernetesEnvironment(python_dependencies=["toolz==1.0.0"], files={"/etc/hostname": "/opt/app/host"},
                                      env_vars={"MODE": "env"})
    args = _args("--python-dependency", "pyyaml==6.0.2", "--python-dependency", "toolz==1.0.0",
                 "--file", f"{src}=/opt/flow/lib.py", "--env-var", "PYTHONPATH=/opt/flow", "--env-var", "MODE=cli",
                 command=command)
    out = image_inputs.apply(env, args)
    assert out.python_dependencies == ("toolz==1.0.0", "pyyaml==6.0.2")  # no duplicate, environment's first
    assert dict(out.files) == {"/etc/hostname": "/opt/app/host", str(src): "/opt/flow/lib.py"}
    assert dict(out.env_vars) == {"MODE": "cli", "PYTHONPATH": "/opt/flow"}


def test_no_inputs_keep_the_environment() -> None:
    env = DaskOnKubernetesEnvironment()
    assert image_inputs.apply(env, _args()) is env


def test_relative_sources_are_taken_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOK_WORKING_DIRECTORY", str(tmp_path))
    out = image_inputs.apply(DaskOnKubernetesEnvironment(), _args("--file", "data.csv=/opt/flow/data.csv"))
    assert dict(out.files) == {str(tmp_path / "data.csv"): "/opt/flow/data.csv"}


@pytest.mark.parametrize("extra,fragment", [
    (("--file", "nodest"), "malformed --file"),
    (("--env-var", "=x"), "malformed --env-var"),
    (("--file", "a.py=relative/dest"), "absolute"),
    (("--file", "a.py=/opt/dok/x"), "reserved"),
    (("--env-var", "DOK_X=1"), "reserved"),
    (("--python-dependency=--index-url=x",), "pip option"),
])
def test_bad_inputs_are_usage_errors(extra: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        image_inputs.apply(DaskOnKubernetesEnvironment(), _args(*extra))
