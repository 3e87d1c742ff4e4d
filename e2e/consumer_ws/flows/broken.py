"""A flow that fails: its _test must fail (e2e/test_consumer_ws.py checks that it does)."""

from __future__ import annotations

from dok.core import Flow, task


@task
def explode() -> None:
    raise RuntimeError("broken on purpose")


with Flow("broken") as flow:
    explode()
