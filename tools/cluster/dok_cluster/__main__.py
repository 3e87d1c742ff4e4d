"""`python -m dok_cluster ...` (with tools/cluster on sys.path)."""

from __future__ import annotations

import sys

from dok_cluster.cli import main

sys.exit(main())
