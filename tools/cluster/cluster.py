"""Entry point of //tools/cluster:cluster (`tools/bazel run //tools:cluster -- up|down|status|...`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also runnable as `python3 tools/cluster/main.py`

from dok_cluster.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
