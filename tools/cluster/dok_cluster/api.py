"""A tiny stdlib client for the local API server (admin client certificate): readiness, create-if-absent."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dok_cluster import settings

_PLURALS = {"Service": "services", "Endpoints": "endpoints", "ClusterRole": "clusterroles",
            "ClusterRoleBinding": "clusterrolebindings", "Namespace": "namespaces"}


@dataclass(frozen=True)
class Api:
    pki: Path
    server: str = settings.API_URL

    def _ctx(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 5.0
                ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ctx(), timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ready(self) -> bool:
        try:
            status, _ = self.request("GET", "/readyz", timeout=2.0)
        except OSError:
            return False
        return status == 200

    def create(self, obj: dict[str, Any]) -> bool:
        """Creates `obj` unless it exists; True when created."""
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        ns = f"/namespaces/{meta['namespace']}" if "namespace" in meta else ""
        collection = f"{base}{ns}/{_PLURALS[kind]}"
        if self.exists(f"{collection}/{meta['name']}"):
            return False  # checked first: a Service's POST fails on its taken clusterIP (422) before 409
        status, body = self.request("POST", collection, obj)
        if status == 409:
            return False
        if status >= 300:
            raise RuntimeError(f"creating {kind} {meta['name']}: HTTP {status}: {body}")
        return True

    def node_ready(self, name: str) -> bool:
        status, body = self.request("GET", f"/api/v1/nodes/{name}")
        if status != 200:
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in body.get("status", {}).get("conditions", []))

    def service_account_ready(self, namespace: str, name: str = "default") -> bool:
        """The ServiceAccount exists and has its token Secret (Kubernetes < 1.24: pods need it to start)."""
        status, body = self.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
        return status == 200 and bool(body.get("secrets"))

    def exists(self, path: str) -> bool:
        status, _ = self.request("GET", path)
        return status == 200
