"""Host changes of the local provider: node address on `lo`, sysctls, the CNI bridge and iptables chains,
kubelet mounts and kubelet-created containers (each undone by `down`), and the route guards (undone only by
`purge`).

The route guards (`ip route add unreachable <dest>` for `settings.ROUTE_GUARDS`: the node IP, the Service
CIDR, the pod CIDR) keep traffic for the cluster's addresses on this machine. While the cluster is up, a pod
that connects to a Service ClusterIP with no ready endpoints is not rejected by kube-proxy's rules and would
otherwise follow the default route out; with the guard it gets an immediate error. Once the cluster is down,
the node address is gone from `lo` but every kubeconfig still points at it: without the guard a client would
reach whatever answers at 10.200.0.1 beyond the default gateway; with it, connect() fails at once
(EHOSTUNREACH). The guards therefore live as long as the cluster's state (its kubeconfigs) does.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from dok_cluster import settings
from dok_cluster.errors import ClusterError
from dok_cluster.progress import say


def run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv)
    if check and proc.returncode != 0:
        raise ClusterError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()[-800:]}")
    return proc


# ---- the record of what `up` changed -------------------------------------------------------------------
def load_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


# ---- sysctls -------------------------------------------------------------------------------------------
def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctls(keys: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for key in keys:
        try:
            out[key] = _sysctl_path(key).read_text().strip()
        except OSError:
            pass
    return out


def restore_sysctls(saved: dict[str, str]) -> list[str]:
    restored = []
    for key, value in saved.items():
        path = _sysctl_path(key)
        try:
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
                restored.append(f"{key}={value}")
        except OSError as exc:
            say(f"warning: could not restore {key}={value}: {exc}")
    return restored


def set_sysctl(key: str, value: str) -> None:
    _sysctl_path(key).write_text(value + "\n")


# ---- node address and route guards ---------------------------------------------------------------------
def has_lo_address() -> bool:
    return f"inet {settings.NODE_IP}/32" in run(["ip", "-4", "addr", "show", "dev", "lo"]).stdout


def add_lo_address() -> bool:
    if has_lo_address():
        return False
    run(["ip", "addr", "add", f"{settings.NODE_IP}/32", "dev", "lo"])
    return True


def remove_lo_address() -> None:
    if has_lo_address():
        run(["ip", "addr", "del", f"{settings.NODE_IP}/32", "dev", "lo"])


def route_guard_argv(action: str, destination: str) -> list[str]:
    """`ip route add|del unreachable <destination>` (main table)."""
    if action not in ("add", "del"):
        raise ValueError(f"action must be add or del, not {action!r}")
    return ["ip", "route", action, "unreachable", destination]


def guarded_destinations(show_unreachable: str) -> set[ipaddress.IPv4Network]:
    """The destinations of the `unreachable` routes in `ip -4 route show type unreachable` output
    (a /32 is printed without its prefix length: `unreachable 10.200.0.1`)."""
    found = set()
    for line in show_unreachable.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "unreachable":
            try:
                found.add(ipaddress.IPv4Network(parts[1]))
            except ValueError:
                continue
    return found


def missing_route_guards(show_unreachable: str,
                         destinations: tuple[str, ...] = settings.ROUTE_GUARDS) -> list[str]:
    present = guarded_destinations(show_unreachable)
    return [d for d in destinations if ipaddress.IPv4Network(d) not in present]


def _show_unreachable() -> str:
    return run(["ip", "-4", "route", "show", "type", "unreachable"]).stdout


def ensure_route_guards() -> list[str]:
    """Adds the missing route guards (idempotent; a concurrent add is fine); returns what it added."""
    missing = missing_route_guards(_show_unreachable())
    for destination in missing:
        run(route_guard_argv("add", destination), check=False)
    still = missing_route_guards(_show_unreachable())
    if still:
        raise ClusterError(f"could not add the route guards {', '.join(still)}",
                           hint="`ip route add unreachable <dest>` needs root (CAP_NET_ADMIN)")
    if missing:
        say(f"added route guards: {', '.join(missing)} unreachable in the main table (the cluster's own routes win "
            "while it is up; kept until `purge`, so nothing for the cluster ever leaves this machine)")
    return missing


def remove_route_guards() -> list[str]:
    present = guarded_destinations(_show_unreachable())
    removed = [d for d in settings.ROUTE_GUARDS if ipaddress.IPv4Network(d) in present]
    for destination in removed:
        run(route_guard_argv("del", destination), check=False)
    return removed


# ---- egress guard --------------------------------------------------------------------------------------
# CNI-ADMIN is the firewall plugin's chain for administrator rules, evaluated first in CNI-FORWARD (before
# its per-pod ACCEPTs): pod traffic that would be routed anywhere but the pod bridge is refused, so nothing
# from the pod CIDR leaves this machine (ipMasq is off as well).
EGRESS_RULE = ("-s", settings.CLUSTER_CIDR, "!", "-o", settings.BRIDGE, "-m", "comment", "--comment",
               "dok: pod traffic never leaves this machine", "-j", "REJECT", "--reject-with", "icmp-net-prohibited")


def add_egress_guard() -> None:
    run(["iptables", "-N", "CNI-ADMIN"], check=False)  # exists already: fine
    if run(["iptables", "-C", "CNI-ADMIN", *EGRESS_RULE], check=False).returncode != 0:
        run(["iptables", "-I", "CNI-ADMIN", "1", *EGRESS_RULE])


def remove_egress_guard() -> None:
    while run(["iptables", "-D", "CNI-ADMIN", *EGRESS_RULE], check=False).returncode == 0:
        pass


# ---- CNI bridge and iptables ---------------------------------------------------------------------------
TABLES = ("filter", "nat", "mangle")
OUR_CHAIN_PREFIXES = ("CNI-", "KUBE-")  # the CNI plugins', the kubelet's and kube-proxy's chains


def existing_chains() -> list[str]:
    chains = []
    for table in TABLES:
        for line in run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines():
            if line.startswith("-N "):
                chains.append(f"{table}/{line.split()[1]}")
    return chains


def remove_cluster_iptables(preexisting: list[str]) -> int:
    """Removes the CNI-*/KUBE-* chains that did not exist before `up`, and every rule jumping into them."""
    removed = 0
    for table in TABLES:
        rules = run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
        ours = {
            line.split()[1] for line in rules
            if line.startswith("-N ") and line.split()[1].startswith(OUR_CHAIN_PREFIXES)
            and f"{table}/{line.split()[1]}" not in preexisting
        }
        if not ours:
            continue
        for line in rules:  # jumps into our chains from built-in or foreign chains
            parts = shlex.split(line)
            if parts[0] == "-A" and parts[1] not in ours and "-j" in parts and parts[parts.index("-j") + 1] in ours:
                run(["iptables", "-t", table, "-D", *parts[1:]], check=False)
        for chain in ours:
            run(["iptables", "-t", table, "-F", chain], check=False)
        for chain in ours:
            if run(["iptables", "-t", table, "-X", chain], check=False).returncode == 0:
                removed += 1
    return removed


def delete_bridge() -> None:
    if run(["ip", "link", "show", settings.BRIDGE], check=False).returncode == 0:
        run(["ip", "link", "del", settings.BRIDGE], check=False)


# ---- kubelet leftovers ---------------------------------------------------------------------------------
def kubelet_containers() -> list[str]:
    proc = run(["docker", "ps", "-aq", "--filter", f"label={settings.KUBELET_CONTAINER_LABEL}"], check=False)
    return proc.stdout.split()


def remove_kubelet_containers() -> int:
    ids = kubelet_containers()
    for start in range(0, len(ids), 50):
        run(["docker", "rm", "-f", "-v", *ids[start:start + 50]], check=False)
    return len(ids)


def unmount_under(root: Path) -> int:
    """Unmounts everything mounted below `root` (secret tmpfs volumes of pods), deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(prefix):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        run(["umount", "-l", target], check=False)
    return len(mounts)


# Paths the 1.20 kubelet uses whatever its flags say (device plugins, pod logs) and its cgroups.
KUBELET_HOST_DIRS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers")


def absent_host_dirs() -> list[str]:
    return [d for d in KUBELET_HOST_DIRS if not os.path.lexists(d)]


def kubepods_cgroups() -> list[str]:
    return sorted(glob.glob("/sys/fs/cgroup/*/kubepods"))


def remove_kubelet_host_leftovers(*, created_dirs: list[str], since: float, cgroups_before: list[str]) -> None:
    """Removes what the kubelet left outside its root dir: directories that did not exist before `up`,
    pod log entries made since `up` in directories that did, and the kubepods cgroups it created."""
    for d in KUBELET_HOST_DIRS:
        if d in created_dirs:
            shutil.rmtree(d, ignore_errors=True)
        elif d != "/var/lib/kubelet" and os.path.isdir(d):
            for entry in os.scandir(d):
                if entry.stat(follow_symlinks=False).st_mtime >= since:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
    for root in kubepods_cgroups():
        if root in cgroups_before:
            continue
        for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: len(t[0]), reverse=True):
            try:
                os.rmdir(dirpath)  # only succeeds for empty cgroups: never touches a live process
            except OSError:
                pass
