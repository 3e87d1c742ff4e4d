"""Dockerfile rendering: layer order, pins, quoting, options (pure, no docker)."""

from __future__ import annotations

import json
import shlex

import pytest

from dok.builder import dockerfile as df
from dok.builder.dockerfile import render_dockerfile
from dok.builder.exceptions import InvalidInputError

PINS = {"dask": "2026.8.0", "distributed": "2026.8.0", "cloudpickle": "3.1.3", "kubernetes": "37.0.2"}
SHA = "ab" * 32


def render(**overrides):
    kwargs = dict(base_image="dok-base:bookworm-py3.11", python_version="3.11", runtime_pins=PINS,
                  flow_name="etl", bundle_sha256=SHA)
    kwargs.update(overrides)
    return render_dockerfile(**kwargs)


def instructions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def index_of(lines: list[str], needle: str) -> int:
    for i, line in enumerate(lines):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in Dockerfile:\n" + "\n".join(lines))


def test_layer_order_most_stable_first():
    lines = instructions(render(ca_bundle=True, pip_index_url="https://pypi.example/simple",
                                python_dependencies=["requests>=2"], has_files=True, env_vars={"A": "1"}))
    order = [
        "FROM dok-base:bookworm-py3.11",
        "sys.version_info",
        "COPY dok/ca-bundle.crt",
        "PIP_INDEX_URL",
        "python3 -m venv /opt/dok/venv",
        '"dask==2026.8.0"',
        '"requests>=2"',
        "COPY dok/opt/ /opt/dok/",
        "compileall",
        "COPY files/ /",
        'ENV A="1"',
        "USER 1000:1000",
        "ENV HOME=/tmp",
        "COPY dok/flow/ /opt/dok/",
        f"ENV DOK_BUNDLE_SHA256={SHA}",
        '"--bundle"',
        "LABEL dok.dev/flow",
    ]
    positions = [index_of(lines, needle) for needle in order]
    assert positions == sorted(positions)
    assert lines[0] == "FROM dok-base:bookworm-py3.11"


def test_flow_is_only_in_the_last_steps():
    """Only the bundle-dependent steps mention the sha: everything before them is cacheable across flows."""
    lines = instructions(render())
    first = index_of(lines, "COPY dok/flow/")
    assert all(SHA not in line for line in lines[:first])
    assert len(lines) - first <= 4  # COPY, ENV, RUN health check, LABEL


def test_runtime_pins_exact_and_repeated_with_user_dependencies():
    lines = instructions(render(python_dependencies=["pandas", "requests>=2"]))
    runtime = json.loads(lines[index_of(lines, '"dask==2026.8.0"')].removeprefix("RUN "))
    assert runtime == ["/opt/dok/venv/bin/pip", "install", "dask==2026.8.0", "distributed==2026.8.0",
                       "cloudpickle==3.1.3", "kubernetes==37.0.2"]
    user = json.loads(lines[index_of(lines, '"pandas"')].removeprefix("RUN "))
    assert user[2:4] == ["pandas", "requests>=2"] and "dask==2026.8.0" in user  # pins cannot move


def test_unpinned_runtime_package_is_installed_but_not_checked():
    text = render(runtime_pins={**PINS, "kubernetes": None})
    assert '"kubernetes"' in text and "kubernetes==" not in text


def test_no_optional_layers_by_default():
    text = render()
    assert "PIP_CERT" not in text and "PIP_INDEX_URL" not in text and "COPY files/" not in text
    assert len(instructions(text)) == len(instructions(render(python_dependencies=[]))) 


def test_ca_bundle_sets_pip_cert():
    text = render(ca_bundle=True)
    assert f"COPY {df.CTX_CA_BUNDLE} {df.CA_BUNDLE_PATH}" in text
    assert f"ENV PIP_CERT={df.CA_BUNDLE_PATH}" in text


def test_health_checks_environment_in_a_cached_layer_and_the_bundle_last():
    lines = instructions(render(dok_packages=("core", "runner")))
    env_check = lines[index_of(lines, "compileall")]
    assert index_of(lines, "compileall") == index_of(lines, "COPY dok/opt/") + 1
    argv = shlex.split(env_check.removeprefix("RUN ").split(" && ", 1)[1])
    assert argv[:4] == ["/opt/dok/venv/bin/python", "/opt/dok/healthcheck.py", "--python", "3.11"]
    for name, version in PINS.items():
        assert f"{name}=={version}" in argv
    assert ["--module", "dok.core", "--module", "dok.runner"] == argv[-4:]
    final = json.loads(lines[-2].removeprefix("RUN "))
    assert final == ["/opt/dok/venv/bin/python", "/opt/dok/healthcheck.py", "--python", "3.11",
                     "--bundle", "/opt/dok/flow.dokflow", "--sha256", SHA]


def test_python_check_names_both_versions():
    code = df.python_check_code("3.11")
    assert "flows are pickled with 3.11: use a 3.11 base image" in code
    compile(code, "<check>", "exec")  # valid Python


def test_env_vars_and_labels_are_quoted():
    text = render(env_vars={"GREETING": 'say "hi" $HOME \\o/'}, flow_name='my "flow" $x')
    assert 'ENV GREETING="say \\"hi\\" \\$HOME \\\\o/"' in text
    assert 'LABEL dok.dev/flow="my \\"flow\\" \\$x"' in text
    assert f"dok.dev/bundle-sha256={SHA}" in text and "app.kubernetes.io/managed-by=dok" in text


def test_dependency_with_shell_characters_is_not_interpreted_by_a_shell():
    lines = instructions(render(python_dependencies=["requests>=2; python_version > '3'"]))
    line = lines[index_of(lines, "requests")]
    assert line.startswith('RUN ["')  # exec form: no shell redirection of '>'
    assert "requests>=2; python_version > '3'" in json.loads(line.removeprefix("RUN "))


@pytest.mark.parametrize("bad", ["1X", "A-B", "", "A B"])
def test_invalid_env_var_names_rejected(bad):
    with pytest.raises(InvalidInputError, match="invalid environment variable name"):
        render(env_vars={bad: "1"})


def test_env_var_newline_and_reserved_rejected():
    with pytest.raises(InvalidInputError, match="newline"):
        render(env_vars={"A": "1\n2"})
    with pytest.raises(InvalidInputError, match="DOK_BUNDLE_SHA256"):
        render(env_vars={"DOK_BUNDLE_SHA256": "x"})


def test_bad_python_version_and_dependency_rejected():
    with pytest.raises(InvalidInputError):
        render(python_version="3")
    with pytest.raises(InvalidInputError, match="python_dependencies"):
        render(python_dependencies=["ok", " "])


def test_runs_as_non_root_with_home_tmp_and_venv_first_on_path():
    text = render()
    assert "USER 1000:1000" in text and "ENV HOME=/tmp" in text
    assert "PATH=/opt/dok/venv/bin:$PATH" in text
    assert 'CMD ["python", "-m", "dok.runner", "/opt/dok/flow.dokflow"]' in text


def test_the_image_pins_bokeh_for_the_schedulers_dashboard():
    from importlib import metadata

    from dok.builder import runtime_pins

    pins = runtime_pins()
    assert pins["bokeh"] == metadata.version("bokeh")  # the client's exact version (requirements.lock)
    assert {"dask", "distributed", "cloudpickle"} <= set(pins)
    assert f"bokeh=={pins['bokeh']}" in render(runtime_pins=pins)
def test_result_store_backend_only_when_the_location_needs_it():
    from dok.builder.build import BuildConfig, plan_build, result_store_packages
    from dok.core import DaskOnKubernetesEnvironment, Flow, task

    assert result_store_packages(None) == () and result_store_packages("file:///mnt/r") == ()
    assert result_store_packages("s3://bucket/runs") == ("fsspec", "s3fs")

    @task
    def one():
        return 1

    with Flow("store") as flow:
        one()
    config = BuildConfig(default_base_image="dok-base:bookworm-py3.11")
    with_s3 = plan_build(DaskOnKubernetesEnvironment(result_location="s3://bucket/runs"), flow, config).dockerfile
    plain = plan_build(DaskOnKubernetesEnvironment(), flow, config).dockerfile
    from importlib import metadata

    pin = f"s3fs=={metadata.version('s3fs')}"
    assert pin in with_s3 and f"--require {pin}" in with_s3 and f"fsspec=={metadata.version('fsspec')}" in with_s3
    assert "s3fs" not in plain
