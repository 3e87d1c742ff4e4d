from __future__ import annotations


def shout(word: str) -> str:
    return word.upper() + "!"
