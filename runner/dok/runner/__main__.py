"""`python -m dok.runner [BUNDLE]`: run the bundled flow in this (job) pod and exit 0 / 1 / 3."""

from __future__ import annotations

import logging
import os
import sys

from dok.core.exceptions import EXIT_INFRA, EXIT_SUCCESS
from dok.runner.run import DEFAULT_BUNDLE_PATH, execute

USAGE = f"usage: python -m dok.runner [{DEFAULT_BUNDLE_PATH}]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args) or len(args) > 1:
        print(USAGE, file=sys.stderr)
        return EXIT_SUCCESS if args and args[0] in ("-h", "--help") else EXIT_INFRA
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    outcome = execute(None, args[0] if args else DEFAULT_BUNDLE_PATH)
    return outcome.exit_code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Background threads (the abandoned flow thread after a cancel, API calls in executors) must not keep
    # the pod alive: everything that matters is closed, flushed and written by now.
    os._exit(code)
