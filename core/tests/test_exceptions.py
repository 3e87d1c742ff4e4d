"""core's error base: message, hint, detail and the exit code every dok error carries."""

from __future__ import annotations

import pickle

import pytest

from dok.core.exceptions import (EXIT_FLOW_FAILED, EXIT_INFRA, EXIT_INTERRUPTED, EXIT_SUCCESS, EXIT_USAGE,
                                 BundleError, DokError, EnvironmentConfigError, FlowDefinitionError)


def test_exit_codes_are_the_cli_contract() -> None:
    assert (EXIT_SUCCESS, EXIT_FLOW_FAILED, EXIT_USAGE, EXIT_INFRA, EXIT_INTERRUPTED) == (0, 1, 2, 3, 130)


def test_message_hint_and_detail() -> None:
    err = DokError("bad thing", hint="do this", detail="line 1\nline 2")
    assert (err.message, err.hint, err.detail) == ("bad thing", "do this", "line 1\nline 2")
    assert str(err) == "bad thing (hint: do this)\nline 1\nline 2"
    assert str(DokError("plain")) == "plain"


def test_exit_code_defaults_to_usage_and_can_be_given() -> None:
    assert DokError("x").exit_code == EXIT_USAGE
    assert BundleError("x").exit_code == EXIT_USAGE
    err = DokError("x", exit_code=EXIT_INFRA)
    assert err.exit_code == EXIT_INFRA
    assert DokError("y").exit_code == EXIT_USAGE  # the override is the instance's, not the class's


def test_subclass_sets_its_class_exit_code() -> None:
    class Infra(DokError):
        exit_code = EXIT_INFRA

    assert Infra("down").exit_code == EXIT_INFRA
    assert Infra("down", exit_code=EXIT_FLOW_FAILED).exit_code == EXIT_FLOW_FAILED


def test_core_errors_are_value_errors_where_they_were() -> None:
    with pytest.raises(ValueError):
        raise EnvironmentConfigError("bad")
    assert isinstance(FlowDefinitionError("x"), DokError)


def test_errors_survive_pickling_with_their_message() -> None:
    # Errors cross process boundaries (Dask workers): the message must survive.
    err = pickle.loads(pickle.dumps(FlowDefinitionError("a cycle")))
    assert type(err) is FlowDefinitionError and err.message == "a cycle" and str(err) == "a cycle"
