"""A flow whose bundle used to differ between processes: sets of strings everywhere (module globals, task
arguments, parameter defaults, a sibling module), dicts of sets, closures, lambdas, nested functions,
a dataclass and an Enum defined here. `dok build` of it twice must give the same image tag."""

from __future__ import annotations

import dataclasses
import enum

import determinism_helpers as helpers

from dok.core import Flow, Parameter, task

LABELS = {"red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"}


class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    words: frozenset


@task
def words(text: str) -> list[str]:
    return [w for w in text.split() if w not in helpers.STOPWORDS]


@task
def score(ws: list[str], rule: Rule, extra: set) -> dict:
    weigh = helpers.weigher(1)
    matched = lambda w: w in rule.words or w in extra or w in LABELS

    def level(total: int) -> Level:
        return Level.HIGH if total > 5 else Level.LOW

    total = sum(weigh(w) for w in ws if matched(w))
    return {"total": total, "level": level(total).value, "rule": rule.name}


with Flow("determinism") as flow:
    text = Parameter("text", default="the urgent red fox is now blue")
    rule = Parameter("rule", default=Rule("colors", frozenset({"red", "blue", "fox"})))
    score(words(text), rule, {"now", "urgent", "later"})
