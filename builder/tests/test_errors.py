"""Error translation: docker/registry/pip failures become one-line messages with hints."""

from __future__ import annotations

from dok.builder import dockerfile as df
from dok.builder.docker_adapter import translate_build_error, translate_registry_error
from dok.builder.exceptions import (
    BaseImageError,
    BuilderError,
    DependencyInstallError,
    HealthCheckError,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachableError,
)
from dok.core.exceptions import DokError

PIP_STEP = '["/opt/dok/venv/bin/pip", "install", "nosuchpkg", "dask==2026.8.0"]'
PIP_TAIL = ["Collecting nosuchpkg",
            "ERROR: Could not find a version that satisfies the requirement nosuchpkg (from versions: none)",
            "ERROR: No matching distribution found for nosuchpkg"]


def test_pip_failure_names_the_package_and_shows_pips_output():
    err = translate_build_error(step=(9, 17, "RUN " + PIP_STEP), tail=PIP_TAIL, error="returned a non-zero code: 1",
                                base_image="b", python_dependencies=("nosuchpkg",))
    assert isinstance(err, DependencyInstallError)
    assert "No matching distribution found for nosuchpkg" in err.message
    assert "python_dependencies nosuchpkg" in err.message
    assert "No matching distribution found for nosuchpkg" in str(err).splitlines()[-1]  # pip's tail
    assert "step 9/17" in err.step


def test_pip_tls_failure_hints_at_the_ca_bundle():
    err = translate_build_error(step=(8, 16, 'RUN ["/opt/dok/venv/bin/pip", "install", "dask==1"]'),
                                tail=["WARNING: ... SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]"],
                                error="non-zero code", base_image="b", python_dependencies=())
    assert isinstance(err, DependencyInstallError) and "runtime dependencies" in err.message
    assert "DOK_BUILD_CA_BUNDLE" in err.hint


def test_health_check_marker_becomes_the_message():
    line = df.CHECK_MARKER + "base image has Python 3.9, flows are pickled with 3.11 | use a 3.11 base image"
    err = translate_build_error(step=(3, 16, "RUN python3 -c sys.version_info"), tail=["noise", line],
                                error="non-zero code", base_image="python:3.9-slim", python_dependencies=())
    assert isinstance(err, HealthCheckError)
    assert str(err).startswith("health check failed: base image has Python 3.9, flows are pickled with 3.11")
    assert err.hint == "use a 3.11 base image"


def test_no_python_in_base_image():
    err = translate_build_error(step=(3, 16, 'RUN ["python3", "-c", "import sys; sys.version_info"]'), tail=[],
                                error='exec: "python3": executable file not found in $PATH', base_image="busybox",
                                python_dependencies=())
    assert isinstance(err, HealthCheckError) and "'busybox' has no python3" in err.message


def test_from_step_failure_is_a_base_image_error():
    err = translate_build_error(step=(1, 16, "FROM nope:1"), tail=[], error="pull access denied", base_image="nope:1",
                                python_dependencies=())
    assert isinstance(err, BaseImageError)


def test_registry_errors():
    assert isinstance(translate_registry_error("r:1", 'Get "http://r:1/v2/": dial tcp: connect: connection refused'),
                      RegistryUnreachableError)
    assert isinstance(translate_registry_error("r:1", "unauthorized: authentication required", status=401),
                      RegistryAuthError)
    assert isinstance(translate_registry_error("r:1", "no basic auth credentials"), RegistryAuthError)
    assert type(translate_registry_error("r:1", "something else")) is RegistryError


def test_errors_are_dok_errors_with_one_line_and_hint():
    err = RegistryAuthError("registry r refused the credentials", hint="docker login r")
    assert isinstance(err, BuilderError) and isinstance(err, DokError)
    assert str(err) == "registry r refused the credentials (hint: docker login r)"


def test_progress_printer_marks_cache_hits_and_hides_run_output():
    import io

    from dok.builder import BuildEvent, StderrProgress

    out = io.StringIO()
    show = StderrProgress(stream=out)
    for event in [BuildEvent(kind="step", message="RUN pip install x", step=1, total=2),
                  BuildEvent(kind="cached", message="cache hit", step=1, total=2),
                  BuildEvent(kind="step", message="COPY flow", step=2, total=2),
                  BuildEvent(kind="output", message="noise", step=2, total=2),
                  BuildEvent(kind="done", message="img:1 (1.0 s)")]:
        show(event)
    assert out.getvalue().splitlines() == ["dok build: [1/2] RUN pip install x (cached)", "dok build: [2/2] COPY flow",
                                           "dok build: img:1 (1.0 s)"]
