"""Command line: `cluster [--provider auto|local|kind] up|down|purge|status|kubeconfig|load-image IMAGE|build`,
`cluster operator install|uninstall|status` (the dask-kubernetes operator, `dok_cluster.operator`).

stdout carries only answers (the kubeconfig path, status lines, `up`'s "started"/"already-up");
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Literal

from dok_cluster import kind, kube_build, local, operator
from dok_cluster.errors import ClusterError
from dok_cluster.paths import Paths

Provider = Literal["local", "kind"]


def choose_provider(requested: str, paths: Paths) -> Provider:
    if requested in ("local", "kind"):
        return requested  # type: ignore[return-value]
    if paths.record.is_file() or (paths.pids.is_dir() and any(paths.pids.glob("*.json"))):
        return "local"  # a local cluster is (or was partly) up: keep using it
    return "kind" if kind.available() else "local"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster", description="dok's Kubernetes for e2e tests and demos")
    parser.add_argument("--provider", choices=("auto", "local", "kind"), default="auto",
                        help="auto: kind when a kind binary and node image exist, else local")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="bring the cluster up (idempotent; builds Kubernetes on first use)")
    sub.add_parser("down", help="stop everything `up` started and undo its host changes (keeps the kubeconfigs "
                   "and the route guards that stop them from reaching off this machine)")
    sub.add_parser("purge", help="(local) down, then delete the state dir (kubeconfigs, certificates) and the "
                   "route guards")
    sub.add_parser("restart", help="down, then up (local: under one lock, so concurrent `up`s wait)")
    sub.add_parser("status", help="say what runs (exit 0 when the cluster is up)")
    sub.add_parser("kubeconfig", help="print the admin kubeconfig path")
    load = sub.add_parser("load-image", help="make a local docker image available to the cluster")
    load.add_argument("image")
    sub.add_parser("build", help="(local) only build/verify the cached Kubernetes binaries; print their dir")
    kubectl = sub.add_parser("kubectl", help="(local) run the cluster's own kubectl (v1.20.2) with the admin kubeconfig")
    kubectl.add_argument("args", nargs=argparse.REMAINDER)
    op = sub.add_parser("operator", help="the dask-kubernetes operator (CRDs + controller): install|uninstall|status")
    op.add_argument("action", choices=("install", "uninstall", "status"))
    args = parser.parse_args(argv)
    # ip, iptables, dnsmasq live in sbin; test runners and `bazel run` may hand us a minimal PATH.
    path = os.environ.get("PATH", "").split(":")
    os.environ["PATH"] = ":".join(
        path + [d for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin") if d not in path]
    )

    paths = Paths.default()
    provider = choose_provider(args.provider, paths)
    impl = local if provider == "local" else kind
    try:
        if args.command == "up":
            # stdout: "started" or "already-up", so callers (the e2e fixture) know whether they own the cluster
            print("started" if impl.up(paths) else "already-up")
        elif args.command == "down":
            impl.down(paths)
        elif args.command == "purge":
            if args.provider == "kind":  # auto: a down local cluster has no record left, so don't ask auto
                raise ClusterError("purge is for the local provider", hint="use `down` (kind deletes its cluster)")
            local.purge(paths)
        elif args.command == "restart":
            if provider == "local":
                local.restart(paths)
            else:
                kind.down(paths)
                kind.up(paths)
        elif args.command == "status":
            print(f"{'provider':<24} {provider}")
            return 0 if impl.status(paths) else 3
        elif args.command == "kubeconfig":
            print(impl.kubeconfig(paths))
        elif args.command == "load-image":
            impl.load_image(paths, args.image)
        elif args.command == "operator":
            binary = kube_build.cache_for(paths).bin / "kubectl"
            kubectl = operator.Kubectl(binary=str(binary) if provider == "local" and binary.is_file() else "kubectl",
                                       kubeconfig=str(impl.kubeconfig(paths)))
            if args.action == "status":
                return 0 if operator.status(kubectl) else 3
            (operator.install if args.action == "install" else operator.uninstall)(kubectl)
        elif args.command == "build":
            print(kube_build.ensure_built(paths).bin)
        elif args.command == "kubectl":
            binary = kube_build.cache_for(paths).bin / "kubectl"
            if provider != "local" or not binary.is_file():
                raise ClusterError("no built kubectl (local provider only)", hint="use your own kubectl")
            args_ = [a for a in args.args if a != "--"] if args.args[:1] == ["--"] else args.args
            os.execv(str(binary), [str(binary), f"--kubeconfig={impl.kubeconfig(paths)}", *args_])
    except ClusterError as err:
        print(f"cluster: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("cluster: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
