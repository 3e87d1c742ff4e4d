"""What the targets of the `dok_flow` Bazel macro run (//tools/dok:defs.bzl): its spec, turned into a `dok`
command line, run in-process through the CLI's public entry point (`dok.launcher.main`).

    <name>_local   dok run FLOW --local [params] [workers] [extra]
    <name>_test    the same (with the test parameters); fails when a pinned python dependency differs from the
                   interpreter's version, or when the flow fails
    <name>_image   dok build FLOW [image inputs] [extra]           (last stdout line: the image reference)
    <name>         dok run FLOW [params] [workers] [image inputs] [extra]

The spec (<name>.dokflow.json, written by the macro) names the flow file and the deps' files by their paths
below the runfiles root; image inputs are `--file <real path>=/opt/flow/runfiles/<runfiles path>` for each of
them, `--env-var PYTHONPATH=...` with the same import roots as the local run, and `--python-dependency` for
each pip pin. Real paths (not the runfiles symlinks, which differ per target) keep the image's content hash the
same for `<name>_image` and `<name>`, so the run after an image build skips it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("local", "test", "image", "run")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*(?:;.*)?$")


@dataclass(frozen=True, kw_only=True)
class ShippedFile:
    """A file of the flow's deps: its path below the runfiles root and its absolute path in the image."""

    runfiles: str
    image: str


@dataclass(frozen=True, kw_only=True)
class FlowSpec:
    """What the macro knows about one flow (see defs.bzl)."""

    label: str
    flow: str
    attr: str | None = None
    params: Mapping[str, Any]
    test_params: Mapping[str, Any]
    max_workers: int | None = None
    min_workers: int | None = None
    base_image: str | None = None
    registry: str | None = None
    python_dependencies: tuple[str, ...] = ()
    files: tuple[ShippedFile, ...] = ()
    pythonpath: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowSpec:
        return cls(
            label=str(data["label"]),
            flow=str(data["flow"]),
            attr=data.get("attr") or None,
            params=dict(data.get("params") or {}),
            test_params=dict(data.get("test_params") or {}),
            max_workers=data.get("max_workers"),
            min_workers=data.get("min_workers"),
            base_image=data.get("base_image") or None,
            registry=data.get("registry") or None,
            python_dependencies=tuple(data.get("python_dependencies") or ()),
            files=tuple(ShippedFile(runfiles=f["runfiles"], image=f["image"]) for f in data.get("files") or ()),
            pythonpath=tuple(data.get("pythonpath") or ()),
        )


def load_spec(path: str | os.PathLike[str]) -> FlowSpec:
    return FlowSpec.from_dict(json.loads(Path(path).read_text()))


def _param_names(extra: Sequence[str]) -> set[str]:
    """Names of the `--param NAME=VALUE` / `-p NAME=VALUE` given on the command line."""
    names: set[str] = set()
    items = iter(extra)
    for arg in items:
        if arg in ("--param", "-p"):
            value = next(items, "")
        elif arg.startswith("--param="):
            value = arg[len("--param="):]
        elif arg.startswith("-p") and not arg.startswith("--"):
            value = arg[2:]
        else:
            continue
        names.add(value.partition("=")[0].strip())
    return names


def param_args(params: Mapping[str, Any], extra: Sequence[str]) -> list[str]:
    """`--param NAME=<json>` for each default the command line does not give itself."""
    overridden = _param_names(extra)
    out: list[str] = []
    for name in sorted(params):
        if name not in overridden:
            out += ["--param", f"{name}={json.dumps(params[name], sort_keys=True)}"]
    return out


def worker_args(spec: FlowSpec) -> list[str]:
    out: list[str] = []
    if spec.min_workers is not None:
        out += ["--min-workers", str(spec.min_workers)]
    if spec.max_workers is not None:
        out += ["--max-workers", str(spec.max_workers)]
    return out


def image_args(spec: FlowSpec, runfiles_root: Path, *, realpath: Callable[[str], str] = os.path.realpath) -> list[str]:
    """The image inputs: the deps' files (by real path), PYTHONPATH, pip pins, base image and registry."""
    out: list[str] = []
    for f in spec.files:
        out += ["--file", f"{realpath(str(runfiles_root / f.runfiles))}={f.image}"]
    if spec.pythonpath:
        out += ["--env-var", "PYTHONPATH=" + ":".join(spec.pythonpath)]
    for dep in spec.python_dependencies:
        out += [f"--python-dependency={dep}"]
    if spec.base_image:
        out += ["--base-image", spec.base_image]
    if spec.registry:
        out += ["--registry", spec.registry]
    return out


def flow_ref(spec: FlowSpec, runfiles_root: Path) -> str:
    path = str(runfiles_root / spec.flow)
    return f"{path}:{spec.attr}" if spec.attr else path


def cli_args(spec: FlowSpec, mode: str, runfiles_root: Path, extra: Sequence[str] = (),
             *, realpath: Callable[[str], str] = os.path.realpath) -> list[str]:
    """The `dok` command line for `mode`; `extra` (arguments after `--`) comes last, so it wins."""
    flow = flow_ref(spec, runfiles_root)
    if mode in ("local", "test"):
        params = spec.test_params if mode == "test" else spec.params
        return ["run", flow, "--local", *param_args(params, extra), *worker_args(spec), *extra]
    if mode == "image":
        return ["build", flow, *image_args(spec, runfiles_root, realpath=realpath), *extra]
    if mode == "run":
        return ["run", flow, *param_args(spec.params, extra), *worker_args(spec),
                *image_args(spec, runfiles_root, realpath=realpath), *extra]
    raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")


def _installed_version(name: str) -> str | None:
    from importlib import metadata  # here: ~0.15 s to import, and only the local runs check pins

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pin_mismatches(requirements: Sequence[str],
                   installed: Callable[[str], str | None] = _installed_version) -> list[str]:
    """For each `name==version` pin, what differs from the local interpreter (other requirements: nothing)."""
    problems: list[str] = []
    for requirement in requirements:
        match = _PIN.match(requirement)
        if not match:
            continue
        name, wanted = match.group(1), match.group(2)
        have = installed(name)
        if have is None:
            problems.append(f"{requirement}: {name} is not installed in the local interpreter ({sys.executable})")
        elif have != wanted:
            problems.append(f"{requirement}: the local interpreter has {name}=={have}")
    return problems


def main(spec_path: str | os.PathLike[str], *, runfiles_root: str | os.PathLike[str], argv: Sequence[str]) -> int:
    """Entry point of the generated `<name>_main.py`: `argv` is the mode (from the target's `args`) and then
    whatever followed `--` on the command line."""
    if not argv or argv[0] not in MODES:
        print(f"dok_flow: expected a mode ({', '.join(MODES)}) as the first argument, got {list(argv)!r}",
              file=sys.stderr)
        return 2
    mode, extra = argv[0], list(argv[1:])
    spec = load_spec(spec_path)
    if mode in ("local", "test"):
        problems = pin_mismatches(spec.python_dependencies)
        for problem in problems:
            print(f"[dok_flow] {spec.label}: python_dependencies pin differs from the local run: {problem}",
                  file=sys.stderr, flush=True)
        if problems and mode == "test":
            print(f"[dok_flow] {spec.label}: the image would not run what this test runs; align the pin with the "
                  "interpreter's lock file", file=sys.stderr, flush=True)
            return 1
        if mode == "test" and not os.environ.get("HOME"):
            os.environ["HOME"] = os.environ.get("TEST_TMPDIR", "/tmp")  # Dask reads ~/.config
    args = cli_args(spec, mode, Path(runfiles_root), extra)
    import dok.launcher

    code = int(dok.launcher.main(args))
    if mode == "test" and code != 0:
        print(f"[dok_flow] {spec.label}: the flow did not succeed locally (dok exit code {code})",
              file=sys.stderr, flush=True)
    return code
