"""Certificates of the local cluster: an openssl CA, a client certificate per component, serving certificates.

Identities (CN / O) follow Kubernetes' conventions, so RBAC's bootstrap roles apply:
admin (O=system:masters), system:kube-controller-manager, system:kube-scheduler, system:kube-proxy,
system:node:<node> (O=system:nodes), the apiserver's client for kubelets, and dok:cluster-dns (the DNS
watcher, granted read access to Services/Endpoints by a ClusterRole). Files are made once and kept:
the CA outlives `down`, so kubeconfigs stay valid.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dok_cluster.errors import ClusterError

DAYS = "3650"


@dataclass(frozen=True)
class Identity:
    name: str  # file stem under pki/
    cn: str
    org: str = ""
    client: bool = True
    server_sans: tuple[str, ...] = ()  # "IP:..." / "DNS:..." entries; non-empty => serverAuth


def identities(*, node_name: str, node_ip: str, api_service_ip: str) -> tuple[Identity, ...]:
    return (
        Identity("admin", "dok-admin", "system:masters"),
        Identity("controller-manager", "system:kube-controller-manager"),
        Identity("scheduler", "system:kube-scheduler"),
        Identity("kube-proxy", "system:kube-proxy"),
        Identity("kubelet", f"system:node:{node_name}", "system:nodes", server_sans=(f"IP:{node_ip}", f"DNS:{node_name}")),
        Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        Identity("cluster-dns", "dok:cluster-dns"),
        Identity(
            "apiserver",
            "kube-apiserver",
            client=False,
            server_sans=(
                f"IP:{node_ip}",
                f"IP:{api_service_ip}",
                "IP:127.0.0.1",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ),
        ),
    )


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()[-1000:]}")


def _subject(identity: Identity) -> str:
    return (f"/O={identity.org}" if identity.org else "") + f"/CN={identity.cn}"


def ensure_ca(pki: Path) -> None:
    if (pki / "ca.crt").is_file() and (pki / "ca.key").is_file():
        return
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", DAYS,
        "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"), "-subj", "/CN=dok-cluster-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )


def ensure_cert(pki: Path, identity: Identity) -> None:
    crt, key = pki / f"{identity.name}.crt", pki / f"{identity.name}.key"
    if crt.is_file() and key.is_file():
        return
    usages = (["clientAuth"] if identity.client else []) + (["serverAuth"] if identity.server_sans else [])
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    if identity.server_sans:
        ext.append(f"subjectAltName={','.join(identity.server_sans)}")
    with tempfile.TemporaryDirectory() as tmp:
        csr, extfile = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        extfile.write_text("\n".join(ext) + "\n")
        _openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(csr),
                 "-subj", _subject(identity))
        _openssl("x509", "-req", "-sha256", "-days", DAYS, "-in", str(csr), "-CA", str(pki / "ca.crt"),
                 "-CAkey", str(pki / "ca.key"), "-set_serial", "0x" + secrets.token_hex(16),
                 "-extfile", str(extfile), "-out", str(crt))


def ensure_service_account_keys(pki: Path) -> None:
    if (pki / "sa.key").is_file() and (pki / "sa.pub").is_file():
        return
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def ensure_all(pki: Path, *, node_name: str, node_ip: str, api_service_ip: str) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    ensure_ca(pki)
    for identity in identities(node_name=node_name, node_ip=node_ip, api_service_ip=api_service_ip):
        ensure_cert(pki, identity)
    ensure_service_account_keys(pki)
