"""Benchmark: how much the image build cache saves. Builds an example flow's image cold (no docker layer
cache: pip installs dask/distributed/cloudpickle/kubernetes from PyPI), rebuilds it unchanged (must be a
content-hash skip, no docker build, < 1 s), then rebuilds after editing only a task body in the flow file
(only the last layers rebuild). Prints `cold_s=… unchanged_s=… flow_change_s=…` and, as its last line,
`flow_change_ratio=<flow_change_s / cold_s>` (target ≤ 0.05). Removes the images it made.

    tools/bazel run //tools/bench:build_cache [-- --base-image dok-base:bookworm-py3.11 --ca-bundle PEM]

Needs dockerd (tools/dockerd/ensure.sh), the base image (tools/images/make_base_image.sh) and PyPI.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

FLOW_SOURCE = '''
from dok.core import Flow, Parameter, task

@task
def numbers(n):
    return list(range(int(n)))

@task
def square(x):
    return x * x

@task
def total(squares):
    return sum(squares)  # BODY

with Flow("bench-fanout") as flow:
    total(square.map(numbers(Parameter("n", default=50))))
'''


def load_flow(directory: Path, source: str, module_name: str):
    """Writes a flow file and imports it by path, the way a user's flow file is loaded."""
    path = directory / f"{module_name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.flow


def dok_sources_digest() -> str:
    """Digest of the dok sources that go into the image: if another process edits them during the
    benchmark, the rebuilds are not 'unchanged'/'flow-only' any more and the run is void."""
    import hashlib

    from dok.builder.context import dok_package_files

    h = hashlib.sha256()
    for f in dok_package_files(("core", "runner"), "src")[1]:
        h.update(f.path.encode() + b"\0" + f.data)
    return h.hexdigest()


def make_private_base(client, base_image: str, run_id: str) -> str:
    import io

    from dok.builder.exceptions import BaseImageError

    tag = f"dok-bench-base:{run_id}"
    dockerfile = f"FROM {base_image}\nLABEL dok.dev/bench-run={run_id}\n"
    for chunk in client.api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, decode=True):
        if "error" in chunk:
            raise BaseImageError(f"cannot derive the benchmark's base from {base_image}: {chunk['error'].strip()}",
                                 hint="make it with tools/images/make_base_image.sh or pass --base-image")
    return tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-image", default=os.environ.get("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11"))
    host_ca = "/etc/ssl/certs/ca-certificates.crt"
    parser.add_argument("--ca-bundle", default=os.environ.get("DOK_BUILD_CA_BUNDLE")
                        or (host_ca if os.path.exists(host_ca) else None))
    parser.add_argument("--verbose", action="store_true", help="print build progress")
    args = parser.parse_args()

    import dok.builder
    from dok.builder.docker_adapter import connect
    from dok.builder.exceptions import BuilderError
    from dok.core import DaskOnKubernetesEnvironment

    events: list = []
    printer = dok.builder.StderrProgress()

    def progress(event):
        events.append(event)
        if args.verbose or event.kind in ("skip", "done"):
            printer(event)

    run_id = uuid.uuid4().hex[:8]
    name = f"dok-bench-{run_id}"
    made: list[str] = []
    client = None
    try:
        client = connect()
        # A base image of our own (the given base + a unique label): its ID is new, so no docker layer cache
        # from other builds on this daemon applies to this run's chain, and later builds can only reuse it.
        base = make_private_base(client, args.base_image, run_id)
        made.append(base)
        env = DaskOnKubernetesEnvironment(base_image=base, image_name=name)
        with tempfile.TemporaryDirectory(prefix="dok-bench-") as tmp:
            flow = load_flow(Path(tmp), FLOW_SOURCE, "bench_flow_v1")
            sources = dok_sources_digest()

            started = time.monotonic()
            cold = dok.builder.build(env, flow, push=False, ca_bundle=args.ca_bundle, no_cache=True, progress=progress)
            cold_s = time.monotonic() - started
            made.append(cold.image)
            cold_steps = sum(e.kind == "step" for e in events)

            events.clear()
            started = time.monotonic()
            same = dok.builder.build(env, flow, push=False, ca_bundle=args.ca_bundle, progress=progress)
            unchanged_s = time.monotonic() - started
            unchanged_steps = sum(e.kind == "step" for e in events)
            if same.image != cold.image:
                print("build_cache: the inputs changed between the cold and the unchanged build (dok sources "
                      "edited meanwhile?); rerun", file=sys.stderr)
                made.append(same.image)
                return 3

            edited = FLOW_SOURCE.replace("return sum(squares)  # BODY", "return sum(squares) + 0  # BODY (edited)")
            flow2 = load_flow(Path(tmp), edited, "bench_flow_v2")
            events.clear()
            started = time.monotonic()
            changed = dok.builder.build(env, flow2, push=False, ca_bundle=args.ca_bundle, progress=progress)
            flow_change_s = time.monotonic() - started
            made.append(changed.image)
            if dok_sources_digest() != sources:
                print("build_cache: the dok sources were edited during the benchmark; rerun", file=sys.stderr)
                return 3
            steps = [e for e in events if e.kind == "step"]
            cached = {e.step for e in events if e.kind == "cached"}
            rebuilt = sum(1 for e in steps if e.step not in cached and not e.message.startswith("FROM"))
    except BuilderError as exc:
        print(f"build_cache: {exc}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            for reference in reversed(made):  # the images, then the private base
                try:
                    client.api.remove_image(reference, force=True)  # and its untagged parents
                except Exception:  # noqa: BLE001 - already gone
                    pass

    print(f"image={changed.image_name} base={args.base_image}")
    print(f"cold_steps={cold_steps} unchanged_build_steps={unchanged_steps} flow_change_rebuilt_steps={rebuilt}")
    print(f"cold_s={cold_s:.2f} unchanged_s={unchanged_s:.3f} flow_change_s={flow_change_s:.2f}")
    print(f"flow_change_ratio={flow_change_s / cold_s:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
