"""The progress views of `dok run`: fed job-log lines (records, task lines, other lines), assert the output."""

from __future__ import annotations

import io

from rich.console import Console

from dok.core.progress import ProgressRecord
from dok.launcher.live import GroupedView, LiveView, counts_text, is_task_success_line, make_view


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rec(t, groups, running=1, starting=0, final=False):
    return "[dok %6.1fs] " % t + ProgressRecord(t=t, groups=groups, running=running, starting=starting,
                                                 final=final).line()


def test_counts_text_and_success_lines():
    assert counts_text({"failed": 1, "success": 40}) == "41 done (40 success, 1 failed)"
    assert counts_text({}) == "0 done"
    assert is_task_success_line("[dok    3.1s] task inc[3]: SUCCESS  [41 finished]")
    assert not is_task_success_line("[dok    3.1s] task inc[4]: FAILED: ValueError: boom  [42 finished]")


def test_grouped_view_one_line_per_changed_group_every_interval_failures_in_full():
    out, clock = io.StringIO(), Clock()
    view = GroupedView(out, interval=5.0, clock=clock)
    view.line("[dok    0.1s] scaling: requested worker w-1")
    for i in range(1, 200):
        clock.now = i * 0.1  # records every 0.1 s for 20 s
        view.line(f"[dok {clock.now:6.1f}s] task inc[{i}]: SUCCESS  [{i} finished]")
        view.line(rec(clock.now, {"inc": {"success": i}, "numbers": {"success": 1}}, running=2, starting=1))
    view.line("[dok   20.0s] task inc[200]: FAILED: ValueError: boom 200  [200 finished]")
    view.line(rec(20.0, {"inc": {"success": 199, "failed": 1}, "numbers": {"success": 1}}, running=0, final=True))
    view.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[dok    0.1s] scaling: requested worker w-1"
    assert not [ln for ln in lines if "SUCCESS" in ln or "dok-progress" in ln], lines  # hidden
    assert "[dok   20.0s] task inc[200]: FAILED: ValueError: boom 200  [200 finished]" in lines  # in full
    inc = [ln for ln in lines if "] inc:" in ln]
    assert 4 <= len(inc) <= 6, inc  # ~one per 5 s over 20 s, plus the final one
    assert inc[-1].startswith("[progress 20s] inc: 200 done (199 success, 1 failed)"), inc[-1]
    assert "workers: 2 running, 1 starting" in inc[0]
    assert len([ln for ln in lines if "] numbers:" in ln]) == 1  # shown once: it never changed again
    assert len(lines) < 15


def test_grouped_view_close_shows_the_last_record_not_yet_printed():
    out, clock = io.StringIO(), Clock()
    view = GroupedView(out, interval=5.0, clock=clock)
    view.line(rec(0.5, {"inc": {"success": 1}}))
    clock.now = 1.0
    view.line(rec(1.0, {"inc": {"success": 7}}))
    assert "7 done" not in out.getvalue()
    view.close()
    assert out.getvalue().splitlines()[-1].startswith("[progress 1s] inc: 7 done (7 success)")


def test_live_view_bars_per_group_with_counts_and_workers():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    view = LiveView(console, auto_refresh=False)
    view.line(rec(3.0, {"inc": {"success": 3}, "square": {"success": 2, "failed": 1}}, running=2, starting=1))
    view.line("[dok    3.5s] scaling: worker w-2 joined")
    view.line("[dok    3.6s] task inc[4]: SUCCESS  [7 finished]")
    view.line(rec(65.0, {"inc": {"success": 10}, "square": {"success": 9, "failed": 1}}, running=0, final=True))
    view.close()
    text = buf.getvalue()
    assert "inc" in text and "10 done (10 success)" in text
    assert "square" in text and "10 done (9 success, 1 failed)" in text
    assert "workers: 2 running, 1 starting" in text and "elapsed 1m05s" in text
    assert "scaling: worker w-2 joined" in text  # other lines scroll above the bars
    assert "task inc[4]: SUCCESS" not in text and "dok-progress" not in text
    assert "━" in text  # a bar was drawn


def test_make_view():
    assert make_view(io.StringIO(), quiet=True) is None
    assert isinstance(make_view(io.StringIO()), GroupedView)  # not a terminal
    assert isinstance(make_view(io.StringIO(), tty=True), LiveView)
