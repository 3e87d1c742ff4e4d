"""Cluster DNS feeder: keeps dnsmasq's --hostsdir in step with the cluster's Services and Endpoints.

Stdlib only; `up` copies it into the state directory and runs it with the system python3, next to
`dnsmasq --hostsdir=DIR` (inotify reload). About once a second it lists Services and Endpoints with its own
client certificate (read-only ClusterRole) and rewrites DIR/cluster.hosts atomically when it changed:
  <clusterIP>  <svc>.<ns>.svc.<domain>                     (ClusterIP services)
  <podIP>      <svc>.<ns>.svc.<domain>                     (headless services: every ready address)
  <podIP>      <hostname>.<svc>.<ns>.svc.<domain>          (headless: addresses with a hostname)
Pods resolve short names through the search path the kubelet writes (`<ns>.svc.<domain> svc.<domain> ...`).
No SRV, no ExternalName, no names outside the cluster (nothing may leave the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def fetch(ctx: ssl.SSLContext, url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:  # noqa: S310 (https to the local API)
        return json.load(resp)


def render(services: dict[str, Any], endpoints: dict[str, Any], domain: str) -> str:
    headless: set[tuple[str, str]] = set()
    lines: list[str] = []
    for svc in services.get("items", []):
        meta, spec = svc["metadata"], svc.get("spec", {})
        name = f"{meta['name']}.{meta['namespace']}.svc.{domain}"
        ip = spec.get("clusterIP") or ""
        if ip == "None":
            headless.add((meta["namespace"], meta["name"]))
        elif ip:
            lines.append(f"{ip} {name}")
    for ep in endpoints.get("items", []):
        meta = ep["metadata"]
        if (meta["namespace"], meta["name"]) not in headless:
            continue
        name = f"{meta['name']}.{meta['namespace']}.svc.{domain}"
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                lines.append(f"{addr['ip']} {name}")
                if addr.get("hostname"):
                    lines.append(f"{addr['ip']} {addr['hostname']}.{name}")
    return "\n".join(sorted(set(lines))) + "\n"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--hosts-dir", required=True, type=Path)
    parser.add_argument("--domain", default="cluster.local")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    args.hosts_dir.mkdir(parents=True, exist_ok=True)
    target = args.hosts_dir / "cluster.hosts"
    last = target.read_text() if target.exists() else None
    failures = 0
    while True:
        try:
            text = render(
                fetch(ctx, f"{args.server}/api/v1/services"), fetch(ctx, f"{args.server}/api/v1/endpoints"), args.domain
            )
            if text != last:
                write_atomically(target, text)
                last = text
                print(f"dns-watcher: {text.count(chr(10))} names", flush=True)
            failures = 0
        except Exception as exc:  # noqa: BLE001 (keep serving; the API may be starting or restarting)
            failures += 1
            if failures in (1, 10) or failures % 60 == 0:
                print(f"dns-watcher: cannot list services/endpoints ({failures}x): {exc}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
