"""Debian packages the local provider needs, installed with apt-get when missing (noninteractive)."""

from __future__ import annotations

import os
import subprocess

from dok_cluster.errors import ClusterError
from dok_cluster.progress import Heartbeat, say

BUILD_PACKAGES = ("golang-go", "make", "gcc", "libc6-dev", "rsync", "dpkg-dev", "patch", "xz-utils", "curl")
RUN_PACKAGES = (
    "etcd-server",
    "containernetworking-plugins",
    "conntrack",
    "socat",
    "iptables",
    "iproute2",
    "openssl",
    "dnsmasq-base",
    "ca-certificates",
    "procps",
)


def missing(packages: tuple[str, ...]) -> list[str]:
    out = []
    for name in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or "install ok installed" not in proc.stdout:
            out.append(name)
    return out


def ensure(packages: tuple[str, ...]) -> None:
    need = missing(packages)
    if not need:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"missing Debian packages: {' '.join(need)}", hint=f"sudo apt-get install {' '.join(need)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with Heartbeat(f"installing {' '.join(need)} (apt-get)", every=20):
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
        ):
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ClusterError(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    say(f"installed {' '.join(need)}")
