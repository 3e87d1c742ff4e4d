"""Test helpers that work across Dask workers (functions are pickled by value, so no shared globals)."""

from __future__ import annotations

import os
import time


class FileLog:
    """An append-only log in a file: tasks running anywhere on this machine can write to it."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def add(self, text: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{time.monotonic():.6f} {text}\n")

    def entries(self) -> list[tuple[float, str]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [(float(t), rest) for t, rest in (line.rstrip("\n").split(" ", 1) for line in f if line.strip())]

    def texts(self) -> list[str]:
        return [t for _, t in self.entries()]
