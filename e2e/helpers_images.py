"""e2e image helpers: the project's base image and small test images built FROM it, loaded into the cluster.

The base image `dok-base:bookworm-py3.11` (Debian bookworm + python3 3.11) is made by
tools/images/make_base_image.sh (debootstrap + docker import, ~2 min, once per machine) when missing; if that
script is absent, the same recipe runs here. Test images are built with the docker SDK (classic builder,
no registry, no pulls) and used with `imagePullPolicy: Never`.
"""

from __future__ import annotations

import io
import subprocess
import tarfile

import docker
import docker.errors

from e2e.helpers import E2E_DIR, Cluster

BASE_IMAGE = "dok-base:bookworm-py3.11"


def image_exists(tag: str) -> bool:
    try:
        docker.from_env().images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_base_image(tag: str = BASE_IMAGE) -> str:
    """Builds the project's base image when it is not in dockerd yet; returns its tag."""
    if image_exists(tag):
        return tag
    for root in (E2E_DIR.parent, E2E_DIR.resolve().parent):
        script = root / "tools" / "images" / "make_base_image.sh"
        if script.is_file():
            subprocess.run(["bash", str(script), tag], check=True, stdout=subprocess.DEVNULL)
            return tag
    raise FileNotFoundError(f"tools/images/make_base_image.sh not found beside {E2E_DIR}: it makes {tag}")


def build_image(tag: str, dockerfile: str, files: dict[str, str | bytes] | None = None) -> str:
    """Builds `tag` from `dockerfile` text and a context of `files` (name -> content); returns the tag."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in {"Dockerfile": dockerfile, **(files or {})}.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith((".sh", ".py")) else 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    try:
        docker.from_env().images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True,
                                       pull=False)
    except docker.errors.BuildError as err:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in err.build_log)
        raise RuntimeError(f"docker build of {tag} failed: {err}\n{log[-3000:]}") from err
    return tag


def build_test_image(cluster: Cluster, tag: str, *, files: dict[str, str | bytes], dockerfile_tail: str = "",
                     base: str = BASE_IMAGE) -> str:
    """FROM the base image, COPY `files` to /opt/test/, run `dockerfile_tail`; load into the cluster."""
    ensure_base_image(base)
    dockerfile = f"FROM {base}\nCOPY . /opt/test/\n{dockerfile_tail}\n"
    build_image(tag, dockerfile, files)
    cluster.load_image(tag)
    return tag
