"""`dok build FILE` through the CLI against the real dockerd, each build in its own process (as a user
runs it): an unchanged flow file gives the same content-hash tag — with another hash seed, and from a copy
in another directory — and every build after the first takes the "already exists: build skipped" path in
under a second. Before bundles were deterministic every `dok build`/`dok run` made a new image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DATA = HERE / "data"
REPO = HERE.parent.parent  # the source tree or the Bazel runfiles tree
BASE_IMAGE = os.environ.get("DOK_TEST_BASE_IMAGE", "dok-base:bookworm-py3.11")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SKIPPED = re.compile(r"(\S+) already exists locally \(same content hash\): build skipped")
READY = re.compile(r"image (\S+) ready in ([0-9.]+)s")


@dataclass(frozen=True)
class Build:
    image: str
    seconds: float  # the build step as the CLI measured it
    wall: float  # the whole `dok build` process
    skipped: bool
    stderr: str


@pytest.fixture(scope="module")
def docker_client():
    import docker

    client = docker.from_env(timeout=600)
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        subprocess.run([str(REPO / "tools" / "images" / "make_base_image.sh"), BASE_IMAGE], check=True)
    return client


@pytest.fixture
def flow_dir(tmp_path):
    """determinism_flow.py (+ its helper module) with an environment naming a unique image."""
    directory = tmp_path / "checkout-a" / "flows"
    directory.mkdir(parents=True)
    shutil.copy(DATA / "determinism_helpers.py", directory)
    name = f"dok-test-cli-{uuid.uuid4().hex[:10]}"
    source = (DATA / "determinism_flow.py").read_text()
    source += ("\nfrom dok.core import DaskOnKubernetesEnvironment\n\n"
               f"environment = DaskOnKubernetesEnvironment(image_name={name!r})\n")
    (directory / "determinism_flow.py").write_text(source)
    return directory


def dok_build(path: Path, *, seed: str, cwd: Path) -> Build:
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), PYTHONHASHSEED=seed,
               DOK_BASE_IMAGE=BASE_IMAGE, DOK_WORKING_DIRECTORY=str(cwd))
    if os.path.exists(HOST_CA_BUNDLE):
        env.setdefault("DOK_BUILD_CA_BUNDLE", HOST_CA_BUNDLE)  # pip inside `docker build` (dev machines)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dok.launcher", "build", str(path)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - started
    sys.stderr.write(proc.stderr)  # the test log shows each build's progress
    assert proc.returncode == 0, proc.stderr
    image = proc.stdout.strip().splitlines()[-1]
    ready = READY.search(proc.stderr)
    assert ready and ready.group(1) == image, proc.stderr
    skipped = SKIPPED.search(proc.stderr)
    assert skipped is None or skipped.group(1) == image
    return Build(image=image, seconds=float(ready.group(2)), wall=wall, skipped=skipped is not None,
                 stderr=proc.stderr)


def test_dok_build_twice_gives_the_same_tag_and_skips(docker_client, flow_dir, tmp_path):
    made: set[str] = set()
    try:
        first = dok_build(flow_dir / "determinism_flow.py", seed="1", cwd=flow_dir)
        made.add(first.image)
        assert first.image.startswith("dok-test-cli-") and re.search(r":[0-9a-f]{24}$", first.image)
        assert docker_client.images.get(first.image).labels["dok.dev/flow"] == "determinism"

        second = dok_build(Path("determinism_flow.py"), seed="2", cwd=flow_dir)  # relative, like a user
        made.add(second.image)
        assert second.image == first.image
        assert second.skipped, second.stderr
        assert second.seconds < 1.0, f"the skipped build took {second.seconds} s"

        elsewhere = tmp_path / "checkout-b" / "deeper"
        shutil.copytree(flow_dir, elsewhere)
        third = dok_build(elsewhere / "determinism_flow.py", seed="3", cwd=tmp_path)
        made.add(third.image)
        assert third.image == first.image and third.skipped, third.stderr
        assert third.seconds < 1.0
        print(f"first build {first.seconds:.1f} s; unchanged: build step {second.seconds:.2f} s / "
              f"{third.seconds:.2f} s, whole `dok build` process {second.wall:.1f} s / {third.wall:.1f} s",
              file=sys.stderr)
    finally:
        for reference in made:
            try:
                docker_client.images.remove(reference, force=True, noprune=False)
            except Exception:  # already gone: nothing of ours left
                pass
