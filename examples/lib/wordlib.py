"""Word helpers for examples/wordcount.py: a py_library with a data file (stopwords.txt, read next to this
module), so the example exercises how dok_flow ships a flow's deps into its image."""

from __future__ import annotations

import re
from pathlib import Path

STOPWORDS = frozenset(Path(__file__).with_name("stopwords.txt").read_text().split())
_WORD = re.compile(r"[a-z']+")


def words(line: str) -> list[str]:
    """The words of `line`, lowercased, without stopwords."""
    return [w for w in _WORD.findall(line.lower()) if w not in STOPWORDS]
