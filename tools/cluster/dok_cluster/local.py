"""The `local` provider: Kubernetes 1.20.2 (built from Debian's source) as plain processes on this machine.

`up`: apt packages → route guards (before anything uses the node address; kept across `down`) → dockerd
(tools/dockerd/ensure.sh) → binaries (kube_build, cached) → host changes (saved first: sysctls, node address
on lo) → certificates, kubeconfigs, configs → pause image
→ etcd, kube-apiserver (then the bootstrap objects: kube-dns Service/Endpoints, DNS watcher RBAC),
controller-manager, scheduler, kubelet, kube-proxy, dnsmasq, DNS watcher → node Ready and the default
ServiceAccount. Idempotent: running components are kept, missing ones started.
`down`: stops exactly the recorded PIDs, removes the kubelet's containers, mounts and data, kube-proxy's
and the CNI plugins' iptables chains, the bridge, the lo address; restores sysctls. It keeps the route
guards (checking them before the lo address goes): the kubeconfigs still point at the node IP, which must
never route off this machine. `purge`: `down`, then the route guards and the state dir (kubeconfigs, PKI).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from dok_cluster import configs, host, kube_build, packages, pki, processes, settings
from dok_cluster.api import Api
from dok_cluster.components import NAMES, components
from dok_cluster.errors import ClusterError
from dok_cluster.paths import Paths
from dok_cluster.progress import fmt_duration, say

REPO_ROOT = Path(__file__).resolve().parents[3]
DNS_WATCHER_SRC = Path(__file__).resolve().parent / "dns_watcher.py"


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local provider needs root (network, mounts, dockerd)", hint="run it as root")


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    paths.state.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another `up`/`down` holds {paths.lock}; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _wait(what: str, check: Callable[[], bool], *, timeout: float, started: float,
          alive: Callable[[], None] | None = None) -> None:
    t0 = time.monotonic()
    last_said = t0
    while not check():
        if alive is not None:
            alive()
        now = time.monotonic()
        if now - t0 > timeout:
            raise ClusterError(f"timed out after {fmt_duration(timeout)} waiting for {what}")
        if now - last_said >= 10:
            say(f"  still waiting for {what} ({fmt_duration(now - t0)})")
            last_said = now
        time.sleep(0.5)
    say(f"{what}: ok (at {fmt_duration(time.monotonic() - started)})")


def _ensure_dockerd() -> None:
    script = REPO_ROOT / "tools" / "dockerd" / "ensure.sh"
    if script.is_file():
        proc = subprocess.run(["bash", str(script), "start"], check=False)
        if proc.returncode != 0:
            raise ClusterError("dockerd is not available (tools/dockerd/ensure.sh failed)")
        return
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        raise ClusterError("dockerd is not running", hint="start it: tools/dockerd/ensure.sh (or `dockerd &`)")


def _image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0


def _ensure_pause_image(bin_dir: Path) -> None:
    if _image_exists(settings.PAUSE_IMAGE):
        return
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(bin_dir / "pause"), arcname="pause")
    proc = subprocess.run(
        ["docker", "import", "--change", 'ENTRYPOINT ["/pause"]', "-", settings.PAUSE_IMAGE],
        input=buf.getvalue(), capture_output=True, check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(f"docker import of the pause image failed: {proc.stderr.decode()[-500:]}")
    say(f"made the pause image {settings.PAUSE_IMAGE}")


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _write_configs(paths: Paths) -> Path:
    pki.ensure_all(paths.pki, node_name=settings.NODE_NAME, node_ip=settings.NODE_IP,
                   api_service_ip=settings.API_SERVICE_IP)
    users = {"admin": "dok-admin", "controller-manager": "system:kube-controller-manager",
             "scheduler": "system:kube-scheduler", "kubelet": f"system:node:{settings.NODE_NAME}",
             "kube-proxy": "system:kube-proxy"}
    for identity, user in users.items():
        text = configs.kubeconfig(pki=paths.pki, identity=identity, user=user)
        _write(paths.kubeconfig if identity == "admin" else paths.config / f"{identity}.kubeconfig", text)
    _write(paths.config / "kubelet.json", configs.kubelet_config(pki=paths.pki, state=paths.state))
    _write(paths.config / "kube-proxy.json", configs.kube_proxy_config(config_dir=paths.config))
    _write(paths.config / "cni" / "10-dok.conflist", configs.cni_conflist(ipam_dir=paths.data / "cni-ipam"), 0o644)
    watcher = paths.state / "bin" / "dns_watcher.py"
    _write(watcher, DNS_WATCHER_SRC.read_text(), 0o755)
    for sub in ("etcd", "kubelet", "dns-hosts", "cni-ipam", "cni-cache", "dockershim", "volume-plugins"):
        (paths.data / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(paths.data / "etcd", 0o700)
    return watcher


def _etcd_healthy() -> bool:
    try:
        with urllib.request.urlopen(settings.ETCD_CLIENT_URL + "/health", timeout=2) as resp:  # noqa: S310
            return b'"health":"true"' in resp.read()
    except OSError:
        return False


def _all_running(paths: Paths) -> bool:
    return all(processes.read(paths.pids, name) is not None for name in NAMES)


def _log_tail(paths: Paths, name: str, lines: int = 25) -> str:
    try:
        return "".join((paths.logs / f"{name}.log").read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return "(no log)"


def _all_alive(paths: Paths) -> None:
    for name in NAMES:
        if processes.read(paths.pids, name) is None:
            raise ClusterError(f"{name} is not running; last lines of its log:\n{_log_tail(paths, name)}")


def up(paths: Paths, *, timeout: float = 240.0) -> bool:
    """Brings the cluster up; False when it was already up (nothing started)."""
    _require_root()
    with _locked(paths):
        return _up(paths, timeout=timeout)


def down(paths: Paths) -> None:
    _require_root()
    with _locked(paths):
        _down(paths)


def purge(paths: Paths) -> None:
    """`down`, then forget the cluster: remove the route guards and the state dir (kubeconfigs, certificates).
    Any kubeconfig of this cluster is useless afterwards; the next `up` makes a new CA."""
    _require_root()
    with _locked(paths):
        _down(paths)
        removed = host.remove_route_guards()
        for entry in paths.state.iterdir():
            if entry == paths.lock:
                continue  # we hold it; removing it would let a concurrent `up` lock another file
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        say(f"purged {paths.state} (kubeconfigs, certificates, logs); removed route guards: "
            f"{', '.join(removed) if removed else 'none'}")


def restart(paths: Paths) -> None:
    """`down` then `up` under one lock, so a concurrent `up` (e.g. an e2e session) waits for the new cluster."""
    _require_root()
    with _locked(paths):
        _down(paths)
        _up(paths)


def _up(paths: Paths, *, timeout: float = 240.0) -> bool:
    command_started = time.monotonic()
    packages.ensure(packages.RUN_PACKAGES)
    # First: from now on the state dir holds kubeconfigs for the node IP, which must never route off
    # this machine (also re-added here when a reboot dropped them while the state survived).
    host.ensure_route_guards()
    _ensure_dockerd()
    cache = kube_build.ensure_built(paths)
    api = Api(paths.pki)
    if _all_running(paths) and api.ready() and api.node_ready(settings.NODE_NAME):
        say(f"already up ({len(NAMES)} components running, node {settings.NODE_NAME} Ready); "
            f"kubeconfig: {paths.kubeconfig}")
        return False
    if not any(processes.read(paths.pids, name) for name in NAMES) and (
            paths.record.is_file() or paths.data.exists()):
        # The processes were killed without `down` (session or machine ended): the old etcd still holds
        # its objects (and allocated IPs), the host its iptables/mounts. Start clean rather than resume.
        say("found the leftovers of a cluster that was never brought down (its processes are gone); "
            "cleaning them up first, so the new cluster starts empty")
        _down(paths)
    started = time.monotonic()
    record = host.load_record(paths.record)
    if not record:
        record = {"provider": "local", "sysctls": host.read_sysctls(settings.SAVED_SYSCTLS),
                  "chains_before": host.existing_chains(), "lo_address_added": False,
                  "started": time.time(),
                  "absent_host_dirs": host.absent_host_dirs(), "cgroups_before": host.kubepods_cgroups()}
    record["bin"] = str(cache.bin)
    host.save_record(paths.record, record)  # saved before any change, so `down` can undo a partial `up`
    record["lo_address_added"] = host.add_lo_address() or record["lo_address_added"]
    host.save_record(paths.record, record)
    host.add_egress_guard()
    host.set_sysctl("net.ipv4.ip_forward", "1")
    host.set_sysctl("net.bridge.bridge-nf-call-iptables", "1")
    watcher = _write_configs(paths)
    _ensure_pause_image(cache.bin)
    for component in components(paths, cache.bin, watcher):
        running = processes.read(paths.pids, component.name)
        if running is None:
            running = processes.start(component, pids_dir=paths.pids, logs_dir=paths.logs)
            say(f"started {component.name} (pid {running.pid}, log {paths.logs / component.name}.log)")

        def alive(r: processes.Running = running) -> None:
            if processes.exited_early(r):
                raise ClusterError(f"{r.name} exited; last lines of its log:\n{_log_tail(paths, r.name)}")

        if component.name == "etcd":
            _wait("etcd healthy", _etcd_healthy, timeout=60, started=started, alive=alive)
        elif component.name == "kube-apiserver":
            _wait("kube-apiserver ready", api.ready, timeout=120, started=started, alive=alive)
            for obj in configs.bootstrap_objects():
                api.create(obj)
    _wait(f"node {settings.NODE_NAME} Ready", lambda: api.node_ready(settings.NODE_NAME),
          timeout=timeout, started=started, alive=lambda: _all_alive(paths))
    _wait("the default ServiceAccount and its token", lambda: api.service_account_ready("default"),
          timeout=timeout, started=started, alive=lambda: _all_alive(paths))
    _all_alive(paths)
    total = time.monotonic() - command_started
    extra = ""
    if total - (time.monotonic() - started) > 5:
        extra = f" (command total {fmt_duration(total)}, with packages/build)"
    say(f"up in {fmt_duration(time.monotonic() - started)}{extra}; kubeconfig: {paths.kubeconfig}")
    return True


def _down(paths: Paths) -> None:
    started = time.monotonic()
    # Before anything else (and so before the node address leaves `lo`): the kubeconfigs survive `down`,
    # so the node IP must become unreachable, never routed through the default gateway.
    if paths.kubeconfig.is_file() or paths.record.is_file() or host.has_lo_address():
        host.ensure_route_guards()
    record = host.load_record(paths.record)
    stopped = [name for name in reversed(NAMES) if processes.stop(paths.pids, name)]
    say(f"stopped {', '.join(stopped) if stopped else 'no running component'}")
    removed = host.remove_kubelet_containers()
    say(f"removed {removed} kubelet-created containers (label {settings.KUBELET_CONTAINER_LABEL})")
    unmounted = host.unmount_under(paths.data)
    if unmounted:
        say(f"unmounted {unmounted} pod volumes")
    host.remove_egress_guard()
    if record:
        chains = host.remove_cluster_iptables(record.get("chains_before", []))
        say(f"removed {chains} iptables chains of the kubelet, kube-proxy and the CNI plugins")
    host.delete_bridge()
    if record:
        host.remove_kubelet_host_leftovers(created_dirs=record.get("absent_host_dirs", []),
                                           since=record.get("started", time.time()),
                                           cgroups_before=record.get("cgroups_before", []))
    if record.get("lo_address_added"):
        host.remove_lo_address()
    restored = host.restore_sysctls(record.get("sysctls", {}))
    if restored:
        say(f"restored sysctls: {', '.join(restored)}")
    if host.unmount_under(paths.data) == 0:
        shutil.rmtree(paths.data, ignore_errors=True)
    paths.record.unlink(missing_ok=True)
    say(f"down in {fmt_duration(time.monotonic() - started)}")


def status(paths: Paths) -> bool:
    """Prints what runs; True when the whole cluster is up."""
    ok = True
    for name in NAMES:
        running = processes.read(paths.pids, name)
        print(f"{name:<24} {'running, pid ' + str(running.pid) if running else 'not running'}")
        ok = ok and running is not None
    api = Api(paths.pki)
    api_ready = paths.pki.joinpath("admin.crt").is_file() and api.ready()
    node = api_ready and api.node_ready(settings.NODE_NAME)
    print(f"{'api server':<24} {'ready at ' + settings.API_URL if api_ready else 'not ready'}")
    print(f"{'node ' + settings.NODE_NAME:<24} {'Ready' if node else 'not Ready'}")
    print(f"{'kubelet containers':<24} {len(host.kubelet_containers())}")
    print(f"{'kubeconfig':<24} {paths.kubeconfig if paths.kubeconfig.is_file() else '(none yet)'}")
    return ok and bool(node)


def kubeconfig(paths: Paths) -> Path:
    if not paths.kubeconfig.is_file():
        raise ClusterError("no kubeconfig yet: the cluster was never brought up", hint="run `up` first")
    if os.geteuid() == 0:
        host.ensure_route_guards()  # handing out a kubeconfig for the node IP: it must not route off-machine
    return paths.kubeconfig


def load_image(paths: Paths, image: str) -> None:
    """The cluster uses this machine's dockerd, so an image is 'loaded' once it exists there."""
    if not _image_exists(image):
        raise ClusterError(f"image {image} is not in the local dockerd", hint="build it first (docker build / import)")
    say(f"{image}: present in dockerd (the local cluster runs on the same dockerd; use imagePullPolicy Never)")
