"""The one exception type of dok_cluster: a ClusterError carries a message and a hint for the user."""

from __future__ import annotations


class ClusterError(Exception):
    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  hint: {self.hint}" if self.hint else base
