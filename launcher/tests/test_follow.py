"""LogFollower: lines go to emit with a [job] prefix; a dropped stream is reopened (asking for the seconds it
may have missed) with the shared retry policy, at most max_attempts times; stop() ends it."""

from __future__ import annotations

from dok.kube import RetryPolicy
from dok.kube.exceptions import ClusterUnreachable
from dok.launcher.follow import LogFollower

FAST = RetryPolicy(initial=0.001, maximum=0.001, jitter=0.0, budget=10.0, max_attempts=3)


class Streams:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.since = []

    def stream_pod_log(self, namespace, name, container=None, since_seconds=None):
        self.since.append(since_seconds)
        outcome = self.outcomes.pop(0)
        for item in outcome:
            if isinstance(item, BaseException):
                raise item
            yield item


def follow(kube):
    lines = []
    f = LogFollower(kube, "ns", "p", lines.append, reconnect=FAST)
    f.start()
    f.join(5.0)
    return f, lines


def test_lines_are_emitted_and_a_dropped_stream_is_reopened():
    kube = Streams(["a", "b", ClusterUnreachable("cluster unreachable (follow log: connection reset)")], ["c"])
    f, lines = follow(kube)
    assert lines == ["[job] a", "[job] b", "[job] c"] and f.lines == ["a", "b", "c"]
    assert kube.since[0] is None and kube.since[1] >= 1  # the reconnect asks for what it may have missed
    assert f.errors and "connection reset" in f.errors[0]


def test_gives_up_after_max_attempts():
    drop = ClusterUnreachable("cluster unreachable")
    kube = Streams([drop], [drop], [drop], ["never"])
    f, lines = follow(kube)
    assert lines == [] and len(kube.since) == 3 and len(f.errors) == 3


def test_stop_ends_the_follower_without_reconnecting():
    kube = Streams([ClusterUnreachable("cluster unreachable")], ["late"])
    lines = []
    f = LogFollower(kube, "ns", "p", lines.append, reconnect=RetryPolicy(initial=30.0, maximum=30.0, jitter=0.0,
                                                                           budget=100.0))
    f.start()
    f.stop()
    f._thread.join(5.0)
    assert not f._thread.is_alive() and lines == []


def test_wait_last_line_returns_when_the_runner_said_its_last_line_while_the_stream_stays_open():
    import threading

    hold = threading.Event()

    class Open:
        def stream_pod_log(self, namespace, name, container=None, since_seconds=None):
            yield "task t: SUCCESS"
            yield "run abc finished: SUCCESS (exit code 0)"
            hold.wait(10)  # the kubelet keeps the stream open a while after the container's end

    lines = []
    f = LogFollower(Open(), "ns", "p", lines.append, reconnect=FAST, last_line=lambda line: " finished: " in line)
    f.start()
    try:
        assert f.wait_last_line(5.0)
        assert lines == ["[job] task t: SUCCESS", "[job] run abc finished: SUCCESS (exit code 0)"]
    finally:
        hold.set()
        f.stop()
    quiet = LogFollower(Streams(["no last line"]), "ns", "p", [].append, reconnect=FAST,
                        last_line=lambda line: False)
    quiet.start()
    assert quiet.wait_last_line(5.0)  # the stream's end counts too (the container ended)
    blocked = threading.Event()

    class Silent:
        def stream_pod_log(self, namespace, name, container=None, since_seconds=None):
            blocked.wait(10)
            return iter(())

    never = LogFollower(Silent(), "ns", "p", [].append, reconnect=FAST, last_line=lambda line: True)
    never.start()
    try:
        assert not never.wait_last_line(0.2)
    finally:
        blocked.set()
        never.stop()
