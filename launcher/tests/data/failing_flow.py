"""A flow whose middle task raises: the CLI must exit 1 and print the task's error."""

from dok.core import Flow, task


@task
def start():
    return 21


@task
def explode(x):
    raise ValueError(f"boom {x * 2}")


@task
def after(x):
    return x


with Flow("failing-flow") as flow:
    after(explode(start()))
