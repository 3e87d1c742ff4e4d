"""The `dok` command line: argument parsing, dispatch, exit codes, Ctrl-C.

    dok run FILE[:ATTR] [--param k=v ...] [--local] [--detach] [options]
    dok build FILE[:ATTR] [--push] [--registry URL]       last stdout line: the image reference
    dok status ID | dok logs ID [--follow] [--workers] | dok cancel ID | dok dashboard ID [--port N]
    dok result ID [--results URL] [--output FILE]        full results of a run from its result location
    dok cleanup ID | --all | dok list | dok setup

Exit codes: 0 the flow succeeded (or the command did its job), 1 the flow failed, 2 usage or
configuration error, 3 infrastructure error, 130 interrupted. Errors are one line (`dok: error: …`) plus
a hint; tracebacks only with `--debug`. The commands themselves live in `commands.py`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any, TextIO

from dok.core.exceptions import EXIT_INFRA, EXIT_INTERRUPTED, EXIT_USAGE, DokError

from . import dashboard as dashboard_options
from . import image_inputs, podflags

PROG = "dok"


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors and exit code 2."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _seconds(text: str) -> int:
    raw = text[:-1] if text.endswith("s") else text
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _common(parser: argparse.ArgumentParser, *, cluster: bool = True) -> None:
    S = argparse.SUPPRESS
    parser.add_argument("--debug", action="store_true", default=S, help="show tracebacks and debug logs")
    if cluster:
        parser.add_argument("-n", "--namespace", default=S, help="Kubernetes namespace (default: the "
                            "environment's, else the kubeconfig context's, else 'default')")
        parser.add_argument("--kubeconfig", default=S, help="kubeconfig file (default: $KUBECONFIG, "
                            "~/.kube/config, else the local cluster's when it is up)")


def _result_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", metavar="URL", help="result location: an fsspec URL (s3://bucket/prefix, "
                        "gs://…, file:///mounted/dir) the runner writes the full results and State to; credentials "
                        "via --secret-env (e.g. AWS_ACCESS_KEY_ID=SECRET:KEY), never in the image")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the flow's result (the dict of reference tasks' results) to FILE, pickled with "
                             "cloudpickle")


def _build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", metavar="URL", help="registry to tag (and push) the image for")
    push = parser.add_mutually_exclusive_group()
    push.add_argument("--push", dest="push", action="store_true", default=None,
                      help="push the image (default: push when a registry is set)")
    push.add_argument("--no-push", dest="push", action="store_false", help="do not push the image")
    parser.add_argument("--base-image", metavar="IMAGE",
                        help="base image (default: $DOK_BASE_IMAGE, else dok's default)")
    parser.add_argument("--ca-bundle", metavar="PEM", help="CA bundle for pip during the build "
                        "(default: $DOK_BUILD_CA_BUNDLE)")
    image_inputs.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="dok: run Python flows on Kubernetes with an autoscaling Dask "
                     "cluster (or locally with --local).")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="run a flow (on Kubernetes, or in-process with --local)",
                         description="Run FILE[:ATTR]'s flow. ATTR defaults to the file's single Flow, else `flow`.")
    run.add_argument("flow", metavar="FILE[:ATTR]")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="flow parameter (value parsed as JSON when possible); repeatable")
    run.add_argument("--local", action="store_true", help="run in-process on a local Dask cluster")
    run.add_argument("--processes", action="store_true", help="--local: workers as processes, not threads")
    run.add_argument("--min-workers", type=_positive_int, metavar="N", help="fewest Dask workers")
    run.add_argument("--max-workers", type=_positive_int, metavar="N", help="most Dask workers")
    run.add_argument("--job-worker-threads", type=_positive_int, metavar="N",
                     help="run tasks in the job pod too, on N threads, until worker pods join: a small flow ends "
                          "without waiting for a pod (default 0: tasks run on worker pods only)")
    run.add_argument("--worker-processes", type=_positive_int, metavar="P",
                     help="Dask workers per worker pod (default 1): a pod starts once for P workers, each with "
                          "its share of the pod's CPU, memory and GPUs; --min/--max-workers count workers, "
                          "--max-workers a multiple of P")
    run.add_argument("--detach", action="store_true", help="print the run's identifier and return at once")
    run.add_argument("--worker-logs", action="store_true",
                     help="also stream the worker pods' logs (copied into the job pod's log as workers end)")
    run.add_argument("--image", metavar="REF", help="use this already built image instead of building")
    run.add_argument("--active-deadline", type=_seconds, metavar="SECONDS", help="Job activeDeadlineSeconds")
    run.add_argument("--ttl", type=_seconds, metavar="SECONDS",
                     help="keep the finished Job and job pod (logs, State) this long whatever the outcome")
    run.add_argument("--ttl-success", type=_seconds, metavar="SECONDS",
                     help="keep the finished Job and job pod this long after a success (default 600)")
    run.add_argument("--ttl-failure", type=_seconds, metavar="SECONDS",
                     help="keep the finished Job and job pod this long after a failure (default 86400)")
    run.add_argument("--worker-start-timeout", type=_seconds, metavar="SECONDS",
                     help="fail the run when a worker pod cannot start within this time (default 120)")
    run.add_argument("--backend", choices=("pods", "operator"), default=None,
                     help="how workers are obtained: dok's own pods (default) or the dask-kubernetes operator "
                          "(needs its CRDs and controller; docs/operator.md)")
    run.add_argument("--secret-env", action="append", default=[], metavar="NAME=SECRET:KEY",
                     help="environment variable from a Kubernetes Secret (job and worker pods); repeatable")
    run.add_argument("--create-pull-secret", action="store_true",
                     help="create the run's image pull Secret from the registry credentials of the build "
                          "($DOK_REGISTRY_USERNAME/PASSWORD or docker login); deleted with the run")
    run.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="stop waiting after this long")
    teardown = run.add_mutually_exclusive_group()
    teardown.add_argument("--rm", action="store_true",
                          help="delete the Job and job pod at once when the run ends (default: they stay until "
                               "their TTL, for `dok logs`/`dok status`; worker pods go at once either way)")
    teardown.add_argument("--keep", action="store_true",
                          help="do not delete anything when the run ends or fails to start (the TTL still applies)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress or log streaming, just the final State")
    podflags.add_arguments(run)
    dash = run.add_mutually_exclusive_group()
    dash.add_argument("--dashboard", action="store_true",
                      help="forward the Dask dashboard to a local port and print its link while the run goes")
    dash.add_argument("--no-dashboard", action="store_true", help="run the scheduler without its dashboard")
    _result_options(run)
    run.add_argument("--all-results", action="store_true",
                     help="return every task's result in its State, not only the reference (final) tasks'")
    run.add_argument("--result-pickup-timeout", type=_seconds, metavar="SECONDS",
                     help="without --results: how long the finished runner waits for this command to fetch the "
                          "full results over a port-forward (default 120)")
    _build_options(run)
    _common(run)

    build = sub.add_parser("build", help="build (and push) the flow's image; prints the image reference")
    build.add_argument("flow", metavar="FILE[:ATTR]")
    _build_options(build)
    _common(build, cluster=False)

    for name, helptext in (("status", "show a run's state"), ("cancel", "stop a run and delete its objects")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("identifier", metavar="ID")
        _common(p)
    logs = sub.add_parser("logs", help="print a run's job pod log")
    logs.add_argument("identifier", metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    logs.add_argument("--workers", action="store_true", help="also print the worker pods' logs")
    _common(logs)
    result = sub.add_parser("result", help="print a run's full results from its result location (--output: "
                            "write the flow's result to a file)")
    result.add_argument("identifier", metavar="ID")
    _result_options(result)
    _common(result)
    cleanup = sub.add_parser("cleanup", help="delete a run's Job and pods (or every dok run's with --all)")
    target = cleanup.add_mutually_exclusive_group(required=True)
    target.add_argument("identifier", metavar="ID", nargs="?")
    target.add_argument("--all", action="store_true", help="every dok run in the namespace")
    _common(cleanup)
    lst = sub.add_parser("list", help="list dok runs in the namespace")
    _common(lst)
    dashboard = sub.add_parser("dashboard", help="forward a running run's Dask dashboard to a local port",
                               description="Print the URL of the run's dashboard (first line), then forward "
                                           "until Ctrl-C or the end of the run.")
    dashboard_options.add_arguments(dashboard)
    _common(dashboard)
    setup = sub.add_parser("setup", help="create/verify the runner's ServiceAccount, Role and RoleBinding")
    _common(setup)
    return parser


def exit_code_for_error(exc: BaseException) -> int:
    """The exit code for an error: a `DokError` carries its own (every dok package's errors are DokErrors);
    anything else is unexpected, an infrastructure error."""
    return exc.exit_code if isinstance(exc, DokError) else EXIT_INFRA


def report_error(exc: BaseException, *, err: TextIO, debug: bool) -> int:
    """Print `dok: error: …` (+ hint) and return the exit code."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
    if isinstance(exc, DokError):
        message, hint, detail = exc.message or str(exc) or type(exc).__name__, exc.hint, exc.detail
    else:  # not raised on purpose: whatever the exception carries, marked as internal
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        message = f"internal error: {type(exc).__name__}: {text}"
        hint = getattr(exc, "hint", None) or ("run with --debug for the traceback" if not debug else None)
        detail = getattr(exc, "detail", None)
    lines = str(message).splitlines() or [""]
    print(f"{PROG}: error: {lines[0]}", file=err)
    for extra in lines[1:]:
        print(f"  {extra}", file=err)
    if hint:
        print(f"  hint: {hint}", file=err)
    if detail and detail not in str(message):
        print(str(detail), file=err)
    err.flush()
    return exit_code_for_error(exc)


def _sigterm_as_interrupt() -> None:
    """`kill <dok run>` (SIGTERM) behaves like Ctrl-C: the run is cancelled and cleaned up. SIGINT is
    (re)armed too: a shell starts background jobs with SIGINT ignored, and `kill -INT` must still work."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread (tests)
        pass


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to sys.exit)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    debug = bool(getattr(args, "debug", False))
    from . import commands

    # The CLI prints its own one-line warnings for secret-looking env_vars (commands.warn_secret_env_vars)
    # and a dropped Job TTL (cmd_run).
    import warnings

    from dok.core.exceptions import SecretEnvVarWarning

    from .exceptions import TTLIgnoredWarning

    warnings.filterwarnings("ignore", category=SecretEnvVarWarning)
    warnings.filterwarnings("ignore", category=TTLIgnoredWarning)  # printed by cmd_run (handle.warnings)
    _sigterm_as_interrupt()
    try:
        return commands.dispatch(args, out=out, err=err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=err, flush=True)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - everything becomes one line + exit code
        return report_error(exc, err=err, debug=debug)


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
