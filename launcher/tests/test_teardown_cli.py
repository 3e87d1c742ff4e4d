"""`dok run` teardown flags: --rm / --keep (exclusive), --ttl for both outcomes, --ttl-success / --ttl-failure."""

from __future__ import annotations

import pytest

from dok.launcher.cli import build_parser
from dok.launcher.commands import kept_message, ttl_settings


def parse(*extra):
    return build_parser().parse_args(["run", "flow.py", *extra])


def test_ttl_flags():
    assert ttl_settings(parse()) == {"ttl_seconds_after_success": None, "ttl_seconds_after_failure": None}
    assert ttl_settings(parse("--ttl", "60")) == {"ttl_seconds_after_success": 60, "ttl_seconds_after_failure": 60}
    assert ttl_settings(parse("--ttl", "60", "--ttl-success", "5")) == {
        "ttl_seconds_after_success": 5, "ttl_seconds_after_failure": 60}
    assert ttl_settings(parse("--ttl-failure", "7200")) == {
        "ttl_seconds_after_success": None, "ttl_seconds_after_failure": 7200}


def test_rm_and_keep_are_exclusive(capsys):
    assert parse("--rm").rm and not parse().rm and parse("--keep").keep
    with pytest.raises(SystemExit) as info:
        parse("--rm", "--keep")
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_kept_message_names_the_ttl_and_how_to_remove():
    from types import SimpleNamespace

    from dok.core import Failed, Success

    handle = SimpleNamespace(job_name="dok-f-1", identifier="abc")
    ok = kept_message(handle, Success())
    assert "success TTL" in ok and "dok cleanup abc" in ok and "dok logs abc" in ok and "--rm" in ok
    assert "failure TTL" in kept_message(handle, Failed(message="x"))
