"""Bounded progress output: map children counted per group, failures printed at once, singles as before."""

from __future__ import annotations

import io

from dok.core import Failed, Success
from dok.launcher.progress import GroupedProgress, group_of


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_group_of():
    assert group_of("inc[12]") == "inc" and group_of("a[b][3]") == "a[b]"
    assert group_of("total") is None


def test_fifty_thousand_children_print_a_bounded_number_of_lines():
    out, clock = io.StringIO(), Clock()
    progress = GroupedProgress(out, interval=5.0, clock=clock)
    for i in range(50_000):
        clock.now = i * 0.001  # 50 s of completions
        progress(f"inc[{i}]", Success())
    progress("inc", Success(message="50000 children"))
    progress("total", Success())
    progress.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) <= 40, lines
    assert any("inc[...]: 50000 finished (50000 success)" in line for line in lines), lines
    assert any(line.strip().startswith("[50002] total") for line in lines), lines


def test_failures_are_printed_in_full_at_once():
    out, clock = io.StringIO(), Clock()
    progress = GroupedProgress(out, interval=5.0, clock=clock, per_group=0)
    progress("inc[0]", Success())
    progress("inc[1]", Failed(message="boom", exc_type="ValueError", exc_message="boom"))
    text = out.getvalue()
    assert "inc[1]" in text and "ValueError: boom" in text
    assert "inc[0]" not in text  # successes wait for the periodic line
    progress.flush()
    assert "inc[...]: 2 finished (1 failed, 1 success)" in out.getvalue()


def test_small_maps_print_every_child_as_before():
    out = io.StringIO()
    progress = GroupedProgress(out)
    for i in range(4):
        progress(f"inc[{i}]", Success())
    progress.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "inc[3] ok" in lines[-1]
