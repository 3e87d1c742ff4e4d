"""A small successful flow for the CLI tests: fan out over range(n), add `offset`, sum."""

from dok.core import Flow, Parameter, task


@task
def numbers(n):
    return list(range(int(n)))


@task
def inc(x, offset=1):
    return x + offset


@task
def total(xs):
    return sum(xs)


with Flow("ok-flow") as flow:
    n = Parameter("n", default=3)
    offset = Parameter("offset", default=1)
    total(inc.map(numbers(n), offset=offset))
