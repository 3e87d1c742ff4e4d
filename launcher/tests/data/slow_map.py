"""Enough waiting work (16 × 0.25 s behind a task's result) that local mode must scale past 1 worker."""

import time

from dok.core import Flow, task


@task
def items():
    return list(range(16))


@task
def slow(x):
    time.sleep(0.25)
    return x


with Flow("slow-map") as flow:
    slow.map(items())
