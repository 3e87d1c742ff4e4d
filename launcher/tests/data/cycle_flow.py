from dok.core import Flow, task


@task
def a():
    return 1


@task
def b():
    return 2


with Flow("cycle") as flow:
    x = a()
    y = b()
    x.set_upstream(y)
    y.set_upstream(x)
