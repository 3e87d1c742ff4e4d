"""Example flow with dependencies: count the words of some lines, one task per line, then merge.

    tools/bazel run //examples:wordcount_local          (or //examples:wordcount on the cluster)

`wordlib` is a py_library of this repository (//examples/lib:wordlib, with a stopwords data file) and `toolz`
a pip pin (python_dependencies): the `dok_flow` macro in examples/BUILD puts both into the image, so the
tasks import the same code in the pod as in the local run. The result is {"top": [[word, count], ...]}.
"""

from __future__ import annotations

import toolz
import wordlib

from dok.core import Flow, Parameter, task

TEXT = (
    "the quick brown fox jumps over the lazy dog",
    "a dog and a fox and the pod",
    "fan out the lines to the workers of the cluster",
)


@task
def lines(repeat: int) -> list[str]:
    return list(TEXT) * int(repeat)


@task
def count(line: str) -> dict[str, int]:
    return toolz.frequencies(wordlib.words(line))


@task
def top(counts: list[dict[str, int]], k: int = 3) -> list[list[object]]:
    merged = toolz.merge_with(sum, *counts)
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    return [[word, n] for word, n in ranked[: int(k)]]


with Flow("wordcount") as flow:
    repeat = Parameter("repeat", default=2)
    k = Parameter("k", default=3)
    top(count.map(lines(repeat)), k=k)
