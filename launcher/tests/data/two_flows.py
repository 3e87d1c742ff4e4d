from dok.core import Flow, task


@task
def one():
    return 1


with Flow("a") as first:
    one()

with Flow("b") as second:
    one()
