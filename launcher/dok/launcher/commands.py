"""What each `dok` subcommand does, given parsed arguments (see `cli.py` for the parser and exit codes).

`run --local` loads the flow and runs it in-process (`local.py`). `run` without --local: check the local
input first (flow, parameters, options, `files` entries, that the flow pickles, the --image reference), so
bad input never touches the cluster; then connect to the cluster (fail fast before any image is built),
set up the namespace, build the image through `dok.builder.build` (the builder's public API), create the
Job, stream, and print the final State; Ctrl-C cancels and cleans up (a second Ctrl-C leaves at once,
naming what may remain). The other commands act on a run by its identifier (checked before connecting).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, TextIO

from dok.core.environment import default_base_image
from dok.core.exceptions import EXIT_INFRA, EXIT_INTERRUPTED, EXIT_SUCCESS, EnvironmentConfigError, ParameterError
from dok.core.runspec import RunSettingError, check_setting, check_worker_processes

from . import image_inputs
from .exceptions import ConfigError, UsageError
from .flowfile import LoadedFlow, load_flow, resolve_path
from .params import check_params, parse_params
from .render import exit_code_for, summary

if TYPE_CHECKING:
    from dok.core.environment import DaskOnKubernetesEnvironment

    from .handle import RunHandle
    from .kube import Kube


def dispatch(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    fn = {"run": cmd_run, "build": cmd_build, "status": cmd_status, "logs": cmd_logs, "cancel": cmd_cancel,
          "cleanup": cmd_cleanup, "list": cmd_list, "setup": cmd_setup, "dashboard": cmd_dashboard,
          "result": cmd_result}[args.command]
    return fn(args, out=out, err=err)


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False))


def _say(err: TextIO, text: str) -> None:
    print(f"[dok] {text}", file=err, flush=True)


# -- flow and parameters --------------------------------------------------------------------------
def load_with_params(args: argparse.Namespace) -> tuple[LoadedFlow, dict[str, Any]]:
    loaded = load_flow(args.flow)
    params = parse_params(args.param)
    check_params(loaded.flow, params)
    try:  # missing required parameters fail now, not in the pod
        loaded.flow.resolve_parameters(params)
    except ParameterError as exc:
        raise UsageError(str(exc), hint="pass it with --param NAME=VALUE") from exc
    return loaded, params


# -- local mode ----------------------------------------------------------------------------------------
def run_local_command(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from .local import local_spec, run_local

    loaded, params = load_with_params(args)
    env = loaded.environment
    try:
        spec = local_spec(min_workers=args.min_workers, max_workers=args.max_workers,
                          env_max_workers=env.max_workers if env is not None else None)
    except RunSettingError as exc:
        raise UsageError(exc.message, hint="fix the option it names") from None
    name = loaded.flow.name
    print(f"[dok] running flow {name!r} locally" + (f" with {params}" if params else ""), file=out, flush=True)
    state = run_local(loaded.flow, parameters=params, spec=spec, processes=args.processes, out=out,
                      debug=_debug(args))
    print(summary(state, flow_name=name, verbose=_debug(args)), file=out, flush=True)
    if getattr(args, "output", None):
        from .results import write_output

        size = write_output(args.output, state)
        _say(out, f"wrote the flow's result to {args.output} ({size} bytes)")
    return exit_code_for(state)


# -- environments and images ------------------------------------------------------------------------
def make_env(loaded: LoadedFlow, args: argparse.Namespace) -> DaskOnKubernetesEnvironment:
    """The flow file's environment (or a default one) with the command line's settings on top. A worker
    bound given alone moves the other one when they would cross (--max-workers 2 with min_workers=3 in the
    file: min 2); the environment checks the result with RunSpec's rules."""
    from dok.core.environment import DaskOnKubernetesEnvironment

    env = loaded.environment if loaded.environment is not None else DaskOnKubernetesEnvironment()
    base_image = getattr(args, "base_image", None)
    if not base_image and os.environ.get("DOK_BASE_IMAGE") and env.base_image == default_base_image():
        base_image = os.environ["DOK_BASE_IMAGE"]
    mn, mx = getattr(args, "min_workers", None), getattr(args, "max_workers", None)
    if mx is not None and mn is None and env.min_workers > mx:
        mn = mx
    if mn is not None and mx is None and mn > env.max_workers:
        mx = mn
    changes: dict[str, Any] = {"base_image": base_image, "registry_url": getattr(args, "registry", None),
                               "namespace": getattr(args, "namespace", None), "min_workers": mn, "max_workers": mx,
                               "result_location": getattr(args, "results", None)}
    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        return dataclasses.replace(env, **changes) if changes else env
    except EnvironmentConfigError as exc:
        raise UsageError(str(exc).splitlines()[0], hint="fix the option it names") from exc


def warn_secret_env_vars(env: DaskOnKubernetesEnvironment, err: TextIO) -> None:
    """env_vars are baked into the image: warn for names that look like secrets (use --secret-env)."""
    from .manifests import looks_secret

    for name in sorted(env.env_vars):
        if looks_secret(name):
            _say(err, f"warning: env var {name} looks like a secret but env_vars are stored in the image; "
                      f"pass it from a Kubernetes Secret instead: --secret-env {name}=SECRET:KEY "
                      f"(or secret_env={{{name!r}: 'SECRET:KEY'}} in the environment)")


def ca_bundle_of(args: argparse.Namespace) -> str | None:
    value = getattr(args, "ca_bundle", None)
    if not value:
        return None  # the builder falls back to $DOK_BUILD_CA_BUNDLE
    path = resolve_path(value)
    if not path.is_file():
        raise UsageError(f"--ca-bundle {value!r} does not exist", hint="give a PEM file")
    return str(path)


def build_image(env: DaskOnKubernetesEnvironment, loaded: LoadedFlow, args: argparse.Namespace, *,
                err: TextIO) -> DaskOnKubernetesEnvironment:
    """`dok.builder.build(...)`; returns the built environment (its `.image` is the reference)."""
    import dok.builder

    push = args.push if args.push is not None else bool(env.registry_url)
    if push and not env.registry_url:
        raise UsageError("--push needs a registry", hint="add --registry HOST:PORT (e.g. localhost:5000)")
    _say(err, f"building the image for flow {loaded.flow.name!r}"
              + (" (and pushing it)" if push else ""))
    started = time.monotonic()
    built = dok.builder.build(env, loaded.flow, push=push, ca_bundle=ca_bundle_of(args))
    _say(err, f"image {built.image} ready in {time.monotonic() - started:.1f}s")
    return built


def cmd_build(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    loaded = load_flow(args.flow)
    env = image_inputs.apply(make_env(loaded, args), args)
    warn_secret_env_vars(env, err)
    built = build_image(env, loaded, args, err=err)
    print(built.image, file=out, flush=True)
    return EXIT_SUCCESS


# -- cluster -----------------------------------------------------------------------------------------
def connect(args: argparse.Namespace) -> Kube:
    from .handle import RunHandle
    from .kube import Kube

    return Kube.connect(kubeconfig=getattr(args, "kubeconfig", None))


def namespace_of(args: argparse.Namespace, kube: Kube, env: DaskOnKubernetesEnvironment | None = None) -> str:
    """-n, else the environment's namespace, else the kubeconfig context's: `launch.resolve_namespace`, the
    one rule for `dok run` and for the commands that find a run by its identifier."""
    from .launch import resolve_namespace

    return resolve_namespace(getattr(args, "namespace", None), env, kube)


def _secret_env(items: list[str]) -> dict[str, SecretRef]:
    from .manifests import SecretRef, validate_env_name

    refs: dict[str, SecretRef] = {}
    for item in items:
        name, sep, ref = item.partition("=")
        if not sep:
            raise UsageError(f"malformed --secret-env {item!r}", hint="write NAME=SECRET:KEY")
        validate_env_name(name)
        refs[name] = SecretRef.parse(ref)
    return refs


def check_local_inputs(env: DaskOnKubernetesEnvironment, loaded: LoadedFlow, args: argparse.Namespace) -> None:
    """What can be checked without the cluster or docker: with --image, the reference; otherwise the build
    inputs (every `files` source exists, the flow pickles). Raises UsageError / core's BundleError (exit 2)."""
    from .manifests import validate_image_reference

    if args.image:
        validate_image_reference(args.image)
        return  # the image holds its own bundle and files
    for source in env.files:
        path = resolve_path(str(source))
        if not path.exists():
            raise UsageError(f"files: {str(source)!r} does not exist (resolved to {path})",
                             hint="fix the path in files= or create the file before running")
    from dok.core import bundle

    bundle.dumps(loaded.flow)  # BundleError naming what cannot be pickled


def pod_settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The pod flags' run settings (podflags), template files read."""
    from .launch import read_template
    from .podflags import pod_settings

    settings = pod_settings(args)
    for name in ("job_template", "worker_template"):
        if name in settings:
            settings[name] = read_template(settings[name], setting=f"--{name.replace('_', '-')}")
    for name, value in settings.items():
        check_setting(name, value)  # RunSpec's rules, now: before the image is built
    return settings


def check_worker_processes_of(args: argparse.Namespace, env: DaskOnKubernetesEnvironment) -> None:
    """--worker-processes (else the environment's) against the worker bounds and the backend (RunSpec's rule),
    before anything is built."""
    processes = getattr(args, "worker_processes", None) or env.worker_processes
    if processes is None:
        return
    try:
        check_setting("worker_processes", processes)
        check_worker_processes(processes, max_workers=env.max_workers,
                               backend=getattr(args, "backend", None) or env.backend or "pods")
    except RunSettingError as exc:
        raise UsageError(str(exc).splitlines()[0], hint="fix --worker-processes or the option it names") from None


def cmd_run(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from .dashboard import check_run_options, dashboard_during_run

    check_run_options(dashboard=args.dashboard, detach=args.detach, local=args.local)
    if args.local and getattr(args, "worker_processes", None):
        raise UsageError("--worker-processes sets the Dask workers of each worker pod; --local runs have no pods",
                         hint="drop --worker-processes (--processes makes --local workers processes)")
    if args.local:
        return run_local_command(args, out=out, err=err)
    from .launch import check_backend, execute
    from .prepare import setup

    loaded, params = load_with_params(args)
    env = image_inputs.apply(make_env(loaded, args), args)
    secret_env = _secret_env(args.secret_env)
    pods = pod_settings_of(args)  # bad pod flags stop here, before the image is built
    check_worker_processes_of(args, env)
    check_local_inputs(env, loaded, args)
    warn_secret_env_vars(env, err)
    kube = connect(args)
    namespace = namespace_of(args, kube, env)
    version = kube.ping()
    _say(err, f"cluster {kube.host} ({version or 'unknown version'}), namespace {namespace}")
    backend = getattr(args, "backend", None)
    check_backend(kube, backend or env.backend or "pods")  # before anything is created
    done = setup(env, namespace=namespace, kube=kube, backend=backend or env.backend or "pods")
    if done.created or done.updated:
        _say(err, f"set up namespace {namespace}: " + ", ".join(done.created + done.updated))
    if args.image:
        env_image = args.image
        flow_name = loaded.flow.name
    else:
        env = build_image(env, loaded, args, err=err)
        env_image = None
        flow_name = env.flow_name or loaded.flow.name
    # The worker bounds and the namespace are in `env` already (make_env); the rest are run settings.
    handle = execute(env, parameters=params, namespace=namespace, kube=kube, setup=False, flow_name=flow_name,
                     image=env_image, active_deadline_seconds=args.active_deadline,
                     **ttl_settings(args),
                     worker_start_timeout=args.worker_start_timeout, secret_env=secret_env or None,
                     job_worker_threads=getattr(args, "job_worker_threads", None),
                     worker_processes=getattr(args, "worker_processes", None),
                     create_pull_secret=getattr(args, "create_pull_secret", False) or None, out=out, **pods,
                     **({"dashboard": "off"} if args.no_dashboard else {}),
                     pickup=not args.detach, result_pickup_timeout=args.result_pickup_timeout,
                     result_fetch="all" if args.all_results else None,
                     **({"backend": backend} if backend else {}))
    for warning in handle.warnings:
        _say(err, f"warning: {warning}")
    _say(err, f"run {handle.identifier}: Job {handle.job_name} in namespace {namespace}")
    if args.detach:
        print(handle.identifier, file=out, flush=True)
        return EXIT_SUCCESS
    with dashboard_during_run(handle, enabled=args.dashboard, say=lambda text: _say(err, text)):
        return wait_attached(handle, args, out=out, err=err)


def wait_attached(handle: RunHandle, args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """Wait for the run in the foreground, print its State, then clean up (unless --keep).
    Ctrl-C cancels the run and cleans up; a second Ctrl-C leaves at once, naming what may remain."""
    from .live import make_view

    view = make_view(out, quiet=args.quiet)  # a live display on a terminal, grouped lines otherwise
    try:
        try:
            state = handle.wait(stream_logs=not args.quiet, timeout=args.timeout, cleanup=False,
                                worker_logs=getattr(args, "worker_logs", False), whole_log=True,
                                on_line=view.line if view is not None else None)
        except KeyboardInterrupt:
            raise
        except BaseException:
            if not args.keep:
                with contextlib.suppress(Exception):
                    handle.cleanup(timeout=60)
            raise
        finally:
            if view is not None:
                view.close()
        print(summary(state, flow_name=handle.flow_name, verbose=_debug(args), result_reprs=True,
                      real_results=handle.full_results),
              file=out, flush=True)
        output_error = _write_output_of_run(handle, state, args, err=err)
        if getattr(args, "rm", False):
            started = time.monotonic()
            remaining = handle.cleanup(timeout=60)
            if remaining:
                _say(err, f"warning: still there after 60 s: {', '.join(remaining)}; "
                          f"retry with `dok cleanup {handle.identifier} -n {handle.namespace}`")
            else:
                _say(err, f"cleaned up run {handle.identifier} in {time.monotonic() - started:.1f}s")
        else:
            _say(err, kept_message(handle, state))
        code = exit_code_for(state)
        if output_error is not None:
            raise output_error  # after the cleanup: `dok: error: …` and its exit code
        if code and handle.runner_exit_code == EXIT_INFRA:
            return EXIT_INFRA  # the runner failed for infrastructure reasons (its State says which)
        return code
    except KeyboardInterrupt:
        _say(err, f"Ctrl-C: cancelling run {handle.identifier} and deleting its Job and pods "
                  "(Ctrl-C again to exit at once)")
        try:
            handle.cancel()
            remaining = handle.cleanup(timeout=60)
        except KeyboardInterrupt:
            print(_leftover_message(handle), file=err, flush=True)
            return EXIT_INTERRUPTED
        if remaining:
            _say(err, f"still there after 60 s: {', '.join(remaining)}; "
                      f"retry with `dok cleanup {handle.identifier} -n {handle.namespace}`")
        else:
            _say(err, f"run {handle.identifier} cancelled; nothing of it is left in the cluster")
        return EXIT_INTERRUPTED


def _write_output_of_run(handle: RunHandle, state: Any, args: argparse.Namespace, *, err: TextIO) -> Exception | None:
    """--output FILE: the flow's full result (from the store, else from the pick-up); the error to report
    (after the cleanup) when they are not available."""
    if not getattr(args, "output", None):
        return None
    from .results import write_output

    try:
        full = handle.result() if handle.result_location is not None else state
        if handle.result_location is None and not handle.full_results:
            from .exceptions import ResultsNotFound

            raise ResultsNotFound("the full results could not be fetched from the job pod, so --output was not "
                                  "written", hint="see the warning above; --results URL keeps them in a store",
                                  exit_code=EXIT_INFRA)
        size = write_output(args.output, full)
    except Exception as exc:  # noqa: BLE001 - reported after the cleanup
        return exc
    _say(err, f"wrote the flow's result to {args.output} ({size} bytes)")
    return None


def cmd_result(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """`dok result ID [--results URL] [--output FILE]`: the run's State with its full results, from the result
    location given, else the one its Job was started with."""
    from .manifests import validate_identifier
    from .results import read_stored, write_output

    validate_identifier(args.identifier)
    if args.results:
        from dok.core.results import check_result_location

        state = read_stored(check_result_location(args.results), args.identifier).state
        flow_name = None
    else:
        handle = _attach(args, out=out)
        state = handle.result()
        flow_name = handle.flow_name
    print(summary(state, flow_name=flow_name, verbose=_debug(args), real_results=True), file=out, flush=True)
    if args.output:
        size = write_output(args.output, state)
        _say(err, f"wrote the flow's result to {args.output} ({size} bytes)")
    return exit_code_for(state)
def ttl_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TTL run settings from `--ttl` (both outcomes), `--ttl-success`, `--ttl-failure` (None: the default)."""
    both = getattr(args, "ttl", None)
    success = getattr(args, "ttl_success", None)
    failure = getattr(args, "ttl_failure", None)
    return {"ttl_seconds_after_success": success if success is not None else both,
            "ttl_seconds_after_failure": failure if failure is not None else both}


def kept_message(handle: RunHandle, state: Any) -> str:
    """What stays after an attached run without --rm: the finished Job and job pod, until the Job's TTL."""
    outcome = "success" if getattr(state, "is_successful", lambda: False)() else "failure"
    return (f"worker pods deleted; Job {handle.job_name} and its pod stay until the {outcome} TTL for "
            f"`dok logs {handle.identifier}` / `dok status {handle.identifier}`; "
            f"`dok cleanup {handle.identifier}` removes them now (or use `dok run --rm`)")


def _leftover_message(handle: RunHandle) -> str:
    return (f"[dok] exiting now. These may remain in namespace {handle.namespace}: Job {handle.job_name} and "
            f"pods labelled dok.dev/identifier={handle.identifier}. Remove them with: "
            f"dok cleanup {handle.identifier} -n {handle.namespace}")


def _attach(args: argparse.Namespace, *, out: TextIO) -> RunHandle:
    from .handle import RunHandle
    from .manifests import validate_identifier

    validate_identifier(args.identifier)  # before connecting: a bad identifier is a usage error
    kube = connect(args)
    return RunHandle.attach(args.identifier, kube=kube, namespace=namespace_of(args, kube), out=out)


def cmd_dashboard(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from .dashboard import cmd_dashboard as forward_dashboard
    from .manifests import validate_identifier

    validate_identifier(args.identifier)  # before connecting: a bad identifier is a usage error
    kube = connect(args)
    return forward_dashboard(args, out=out, err=err, kube=kube, namespace=namespace_of(args, kube))


def cmd_status(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    handle = _attach(args, out=out)
    st = handle.status()
    workers = ", ".join(f"{n} {phase}" for phase, n in sorted(st.workers.items())) or "none"
    lines = [f"run:        {st.identifier}", f"flow:       {st.flow_name or '?'}",
             f"namespace:  {st.namespace}",
             f"job:        {st.job_name or '(deleted)'}" + (f" ({st.job_reason})" if st.job_reason else ""),
             f"job pod:    {st.job_pod or '(none)'} {st.phase}" + (f" ({st.pod_reason})" if st.pod_reason else ""),
             f"workers:    {workers}"]
    if st.created:
        lines.append(f"created:    {st.created}")
    print("\n".join(lines), file=out)
    if st.state is not None:
        print(summary(st.state, flow_name=st.flow_name, verbose=_debug(args), result_reprs=True), file=out)
    out.flush()
    return EXIT_SUCCESS


def cmd_logs(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    handle = _attach(args, out=out)
    handle.logs(follow=args.follow, workers=args.workers, emit=lambda line: print(line, file=out, flush=True))
    return EXIT_SUCCESS


def cmd_cancel(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    handle = _attach(args, out=out)
    handle.cancel()
    remaining = handle.cleanup(timeout=60)
    if remaining:
        raise ConfigError(f"run {handle.identifier} cancelled, but still there after 60 s: {', '.join(remaining)}",
                          hint=f"retry `dok cleanup {handle.identifier}`")
    print(f"cancelled run {handle.identifier}; nothing of it is left", file=out, flush=True)
    return EXIT_SUCCESS


def cmd_cleanup(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from dok.core import labels as core_labels
    from dok.kube import labels_of

    from .handle import RunHandle
    from .manifests import validate_identifier

    if not args.all:
        validate_identifier(args.identifier)
    kube = connect(args)
    ns = namespace_of(args, kube)
    if args.all:
        sel = f"{core_labels.MANAGED_BY_LABEL}=dok,{core_labels.IDENTIFIER_LABEL}"
        ids = sorted({labels_of(o).get(core_labels.IDENTIFIER_LABEL)
                      for o in kube.list_jobs(ns, sel) + kube.list_pods(ns, sel)} - {None})
    else:
        ids = [args.identifier]
        RunHandle.attach(args.identifier, kube=kube, namespace=ns)  # RunNotFound for an unknown ID
    leftovers: list[str] = []
    for identifier in ids:
        handle = RunHandle(kube=kube, identifier=identifier, namespace=ns, out=out)
        remaining = handle.cleanup(timeout=60)
        leftovers += remaining
        print(f"cleaned up run {identifier}" + (f" (still there: {', '.join(remaining)})" if remaining else ""),
              file=out, flush=True)
    if args.all and not ids:
        print(f"no dok runs in namespace {ns}", file=out, flush=True)
    if leftovers:
        raise ConfigError(f"still there after 60 s: {', '.join(leftovers)}", hint="rerun dok cleanup")
    return EXIT_SUCCESS


def cmd_list(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from dok.core import labels as core_labels
    from dok.kube import created_text, labels_of

    from .handle import _job_phase

    kube = connect(args)
    ns = namespace_of(args, kube)
    sel = f"{core_labels.MANAGED_BY_LABEL}=dok,{core_labels.IDENTIFIER_LABEL}"
    jobs = kube.list_jobs(ns, sel)
    pods = kube.list_pods(ns, sel)
    workers: dict[str, int] = {}
    for p in pods:
        labels = labels_of(p)
        if labels.get(core_labels.COMPONENT_LABEL) != "job":
            key = labels.get(core_labels.IDENTIFIER_LABEL, "")
            workers[key] = workers.get(key, 0) + 1
    rows = [("IDENTIFIER", "FLOW", "STATUS", "WORKERS", "CREATED")]
    for job in sorted(jobs, key=lambda j: str(created_text(j))):
        labels = labels_of(job)
        ident = labels.get(core_labels.IDENTIFIER_LABEL, "?")
        rows.append((ident, labels.get(core_labels.FLOW_LABEL, "?"), _job_phase(job), str(workers.get(ident, 0)),
                     created_text(job) or ""))
    with_job = {labels_of(j).get(core_labels.IDENTIFIER_LABEL) for j in jobs}
    orphans: dict[str, list[Any]] = {}
    for p in pods:
        labels = labels_of(p)
        ident = labels.get(core_labels.IDENTIFIER_LABEL, "?")
        if ident not in with_job:
            orphans.setdefault(ident, []).append(p)
    for ident, items in sorted(orphans.items()):
        labels = labels_of(items[0])
        rows.append((ident, labels.get(core_labels.FLOW_LABEL, "?"), f"NoJob({len(items)} pods)",
                     str(workers.get(ident, 0)), created_text(items[0]) or ""))
    if len(rows) == 1:
        print(f"no dok runs in namespace {ns}", file=out, flush=True)
        return EXIT_SUCCESS
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)
    out.flush()
    return EXIT_SUCCESS


def cmd_setup(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    from .prepare import setup

    kube = connect(args)
    ns = namespace_of(args, kube)
    res = setup(None, namespace=ns, kube=kube)
    for what, items in (("created", res.created), ("updated", res.updated), ("verified", res.verified)):
        if items:
            print(f"{what}: {', '.join(items)}", file=out)
    print(f"namespace {ns} is ready for dok runs (service account {res.service_account})", file=out, flush=True)
    return EXIT_SUCCESS

