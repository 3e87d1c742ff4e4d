"""Progress records: counted per task group, due every interval, one JSON line that parses back."""

from __future__ import annotations

from dok.core import Failed, Success
from dok.core.names import PROGRESS_MARK
from dok.core.progress import ProgressCounter, ProgressRecord, group_of, kind_name, parse_record


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_group_of():
    assert group_of("inc[12]") == "inc" and group_of("a[b][3]") == "a[b]" and group_of("total") == "total"


def test_counts_per_group_and_the_map_parent_is_not_counted_twice():
    clock = Clock()
    counter = ProgressCounter(interval=2.0, clock=clock)
    for i in range(5):
        counter.add(f"inc[{i}]", kind_name(Success()))
    counter.add("inc[5]", kind_name(Failed(message="boom")))
    counter.add("inc", kind_name(Failed(message="1 child failed")))  # the map parent
    counter.add("total", "skipped")
    assert not counter.due()  # no time passed
    clock.now += 2.5
    assert counter.due()
    record = counter.record(running=2, starting=1)
    assert record.groups == {"inc": {"success": 5, "failed": 1}, "total": {"skipped": 1}}
    assert record.t == 2.5 and record.done("inc") == 6
    assert not counter.due(workers_changed=False)  # nothing new since
    clock.now += 3
    assert counter.due(workers_changed=True)


def test_line_round_trip_and_prefix_tolerated():
    record = ProgressRecord(t=12.345, groups={"inc": {"success": 3}}, running=1, starting=2, final=True)
    line = record.line()
    assert line.startswith(PROGRESS_MARK) and "\n" not in line and len(line) < 200
    back = parse_record("[dok   12.3s] " + line)
    assert back == ProgressRecord(t=12.3, groups={"inc": {"success": 3}}, running=1, starting=2, final=True)


def test_malformed_or_plain_lines_are_not_records():
    assert parse_record("task inc[3]: SUCCESS  [4 finished]") is None
    assert parse_record(PROGRESS_MARK + "{not json") is None
    assert parse_record(PROGRESS_MARK + '{"t": 1}') is None
