"""`python -m dok.runner [BUNDLE]`: run the bundled flow in this (job) pod and exit 0 / 1 / 3.

The result pick-up server (`dok.runner.results`, when the run has one) starts first, before the heavy imports
(distributed, the Kubernetes client): an attached caller's port-forward reaches it as soon as the container
runs, and never meets a refused connection while the runner is still importing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from dok.core.exceptions import EXIT_INFRA, EXIT_SUCCESS
from dok.core.names import BUNDLE_PATH

USAGE = f"usage: python -m dok.runner [{BUNDLE_PATH}]"


def early_pickup_server(environ: Mapping[str, str]) -> Any:
    """The pick-up server, started now when the job pod's settings ask for one (a pick-up timeout and no
    result location: an attached caller), else None. `run.execute` checks the decision again once the
    settings are resolved, and reports a port that cannot be bound."""
    from dok.core.runspec import env_var

    if environ.get(env_var("result_location")) or not environ.get(env_var("result_pickup_timeout")):
        return None
    from dok.runner.results import PickupServer

    try:
        return PickupServer().start()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args) or len(args) > 1:
        print(USAGE, file=sys.stderr)
        return EXIT_SUCCESS if args and args[0] in ("-h", "--help") else EXIT_INFRA
    pickup = early_pickup_server(os.environ)
    from dok.runner.run import execute  # distributed and the rest: after the pick-up server listens

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    outcome = execute(None, args[0] if args else BUNDLE_PATH, pickup=pickup)
    return outcome.exit_code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Background threads (the abandoned flow thread after a cancel, API calls in executors) must not keep
    # the pod alive: everything that matters is closed, flushed and written by now.
    os._exit(code)
