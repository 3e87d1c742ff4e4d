from dok.core import Flow, Parameter, task


@task
def show(x):
    return x


with Flow("needs-x") as flow:
    show(Parameter("x"))
