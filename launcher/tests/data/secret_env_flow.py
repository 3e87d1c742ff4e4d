from dok.core import DaskOnKubernetesEnvironment, Flow, task


@task
def hello():
    return "hi"


with Flow("secretive") as flow:
    hello()

environment = DaskOnKubernetesEnvironment(env_vars={"API_TOKEN": "abc", "LOG_LEVEL": "info"}, max_workers=2)
