"""The CLI's error report: one line + hint, and the exit code each dok error carries (core's DokError)."""

from __future__ import annotations

import io

import pytest

from dok.builder.exceptions import (BuildFailedError, DockerUnavailableError, InvalidInputError, PushFailedError,
                                    RegistryAuthError, RegistryUnreachableError)
from dok.core.exceptions import BundleError
from dok.launcher.cli import report_error
from dok.launcher.exceptions import ClusterUnreachable, UsageError


@pytest.mark.parametrize("exc, code", [
    (DockerUnavailableError("no docker"), 3),
    (RegistryUnreachableError("no registry"), 3),
    (PushFailedError("push broke"), 3),
    (RegistryAuthError("denied"), 2),
    (InvalidInputError("bad name"), 2),
    (BuildFailedError("step failed"), 2),
    (BundleError("cannot pickle"), 2),
    (UsageError("bad option"), 2),
    (ClusterUnreachable("down"), 3),
    (RuntimeError("boom"), 3),
])
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert report_error(exc, err=io.StringIO(), debug=False) == code


def test_dok_error_lines() -> None:
    err = io.StringIO()
    report_error(BuildFailedError("pip failed", hint="pin it", detail="ERROR: no such package"), err=err,
                 debug=False)
    assert err.getvalue() == "dok: error: pip failed\n  hint: pin it\nERROR: no such package\n"


def test_unexpected_error_is_internal() -> None:
    err = io.StringIO()
    report_error(KeyError("x"), err=err, debug=False)
    assert err.getvalue() == ("dok: error: internal error: KeyError: 'x'\n"
                              "  hint: run with --debug for the traceback\n")
