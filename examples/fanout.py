"""Example flow: fan out many small tasks and reduce their results.

    dok run examples/fanout.py --local --param n=200 --param sleep=0.01

`numbers(n)` makes the list 0..n-1, `square.map(...)` squares every item in its own task (optionally
sleeping `sleep` seconds to look like real work), and `total` sums the squares. The flow's result is
`{"total": sum(i*i for i in range(n))}`.
"""

from __future__ import annotations

import time

from dok.core import Flow, Parameter, task


@task
def numbers(n: int) -> list[int]:
    return list(range(int(n)))


@task(max_retries=1, retry_delay=0.5)
def square(x: int, sleep: float = 0.0) -> int:
    if sleep:
        time.sleep(float(sleep))
    return x * x


@task
def total(squares: list[int]) -> int:
    return sum(squares)


with Flow("fanout") as flow:
    n = Parameter("n", default=50)
    sleep = Parameter("sleep", default=0.0)
    total(square.map(numbers(n), sleep=sleep))


if __name__ == "__main__":
    state = flow.run()
    print(state, state.result)
