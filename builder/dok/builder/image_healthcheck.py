"""Build-time health check, run INSIDE the image by the Dockerfile's last RUN step (stdlib + dok.core only).

Checks that the image can run flows pickled by the client that built it: the Python minor version is the
client's, the pinned packages import at exactly the client's versions, the dok packages import, and the
flow bundle loads (with the expected sha256) through `dok.core.bundle.load`. On a mismatch it prints one
line `dok-check: FAILED: <what differs> | <how to fix>` and exits 1 (dok.builder turns it into a
`HealthCheckError`); on success `dok-check: ok ...`.

    python /opt/dok/healthcheck.py --python 3.11 --require dask==2026.8.0 --module dok.core \
        --bundle /opt/dok/flow.dokflow --sha256 <hex>
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys

MARKER = "dok-check: FAILED: "

# distribution name -> module to import
_IMPORT_NAMES = {"kubernetes": "kubernetes.client"}


def fail(what: str, fix: str) -> None:
    print(MARKER + what + " | " + fix, file=sys.stderr, flush=True)
    sys.exit(1)


def check(args: argparse.Namespace) -> list[str]:
    ok: list[str] = []
    have = "%d.%d" % sys.version_info[:2]
    if have != args.python:
        fail(
            f"base image has Python {have}, flows are pickled with {args.python}",
            f"use a {args.python} base image (e.g. python:{args.python}-slim)",
        )
    ok.append("python " + ".".join(map(str, sys.version_info[:3])))
    for requirement in args.require:
        name, _, want = requirement.partition("==")
        try:
            got = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            fail(f"{name} is not installed in the image (client has {want})", f"add {name}=={want} to python_dependencies")
        if got != want:
            fail(
                f"{name} is {got} in the image but {want} on the client",
                f"remove the conflicting pin from python_dependencies or install {name}=={got} locally",
            )
        try:
            importlib.import_module(_IMPORT_NAMES.get(name, name))
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            fail(f"{name} {got} does not import in the image: {exc!r}", "check python_dependencies for conflicts")
        ok.append(f"{name} {got}")
    for module in args.module:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001
            fail(f"{module} does not import in the image: {exc!r}", "report a dok bug: the dok sources were not copied")
        ok.append(module)
    if args.bundle:
        ok.append(check_bundle(args.bundle, args.sha256 or None))
    return ok


def check_bundle(path: str, expected_sha256: str | None) -> str:
    """The bundle is intact, has the expected sha256, was written with this image's Python/dask/distributed/
    cloudpickle (compared via package metadata: no need to import distributed), and unpickles here."""
    from dok.core import bundle

    try:
        info = bundle.read_info(path, expected_sha256)
    except Exception as exc:  # noqa: BLE001 - BundleError names the problem
        fail(f"the flow bundle is not the one built: {exc}", "rebuild the image")
    have = "%d.%d" % sys.version_info[:2]
    if info.python != have:
        fail(f"base image has Python {have}, flows are pickled with {info.python}",
             f"use a {info.python} base image (e.g. python:{info.python}-slim)")
    for name in ("dask", "distributed", "cloudpickle"):
        want = getattr(info, name)
        try:
            got = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            got = "not installed"
        if got != want:
            fail(f"{name} is {got} in the image but the flow was pickled with {want}",
                 f"install {name}=={want} in the image (the client's version)")
    try:
        try:
            flow = bundle.load(path, expected_sha256, check_versions=False)  # versions compared above
        except TypeError:
            flow = bundle.load(path, expected_sha256)
    except Exception as exc:  # noqa: BLE001 - BundleError names the mismatch
        text = str(exc) or repr(exc)
        cause = exc.__cause__
        missing = getattr(exc, "name", None) or getattr(cause, "name", None)
        if missing or "No module named" in text:
            fail(f"the flow bundle does not load in the image: {text}",
                 f"the flow imports module {missing or '?'!s} that is not in the image: add its package to "
                 "python_dependencies, or its source file to files (and env_vars PYTHONPATH)")
        fail(f"the flow bundle does not load in the image: {text}",
             "build with the same Python, dask and cloudpickle as the pods")
    return f"flow {getattr(flow, 'name', '?')!r} (sha256 {info.sha256[:12]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True)
    parser.add_argument("--require", action="append", default=[])
    parser.add_argument("--module", action="append", default=[])
    parser.add_argument("--bundle")
    parser.add_argument("--sha256")
    ok = check(parser.parse_args(argv))
    print("dok-check: ok " + ", ".join(ok), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
