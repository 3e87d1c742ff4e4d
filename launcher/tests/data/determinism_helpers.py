"""A sibling module of determinism_flow.py (pickled by value with it): module-level sets and a closure factory."""

from __future__ import annotations

STOPWORDS = frozenset({"the", "a", "of", "and", "to", "in", "is", "it"})
WEIGHTS = {"high": {"urgent", "now", "critical"}, "low": {"later", "someday"}}


def weigher(bonus: int):
    def weigh(word: str) -> int:
        return next((len(k) + bonus for k, words in WEIGHTS.items() if word in words), bonus)

    return weigh
