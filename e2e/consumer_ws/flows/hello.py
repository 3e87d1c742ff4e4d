"""The consumer workspace's flow: one task per word, through a library of this workspace."""

from __future__ import annotations

from dok.core import Flow, Parameter, task
from lib.shout import shout


@task
def words(text: str) -> list[str]:
    return str(text).split()


@task
def loud(word: str) -> str:
    return shout(word)


@task
def join(parts: list[str]) -> str:
    return " ".join(parts)


with Flow("hello") as flow:
    text = Parameter("text", default="hello dok")
    join(loud.map(words(text)))
