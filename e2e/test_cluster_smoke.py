"""Smoke tests proving the cluster is real: python pods from the project's base image, service-account
access to the API with RBAC enforced, pod-to-pod networking by IP and Service name (and the route guard),
and a Job whose pods are then deleted by label."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable

import pytest

from e2e import helpers
from e2e.helpers import Cluster

SMOKE_IMAGE = "dok-e2e-smoke:1"

# One script, several roles; prints a single JSON line as the last line of its output.
SMOKE_SCRIPT = r'''
import json, os, signal, socket, ssl, sys, time, urllib.error, urllib.request

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores SIGTERM unless handled
role = sys.argv[1]

def out(**kw):
    print(json.dumps(kw), flush=True)

if role == "hello":
    out(python=sys.version.split()[0], hostname=socket.gethostname(), sum=sum(range(10)))

elif role == "api":
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = open(f"{sa}/token").read().strip()
    ns = open(f"{sa}/namespace").read().strip()
    ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
    def get(url):
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, None
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ["KUBERNETES_SERVICE_PORT"]
    st_ip, pods = get(f"https://{host}:{port}/api/v1/namespaces/{ns}/pods")
    st_dns, _ = get(f"https://kubernetes.default.svc/api/v1/namespaces/{ns}/pods")
    st_secrets, _ = get(f"https://{host}:{port}/api/v1/namespaces/kube-system/secrets")
    out(host=host, pods_status=st_ip, dns_status=st_dns, secrets_status=st_secrets,
        pod_names=[p["metadata"]["name"] for p in (pods or {}).get("items", [])])

elif role == "serve":
    from http.server import BaseHTTPRequestHandler, HTTPServer
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"server": socket.gethostname()}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    HTTPServer(("0.0.0.0", 8080), H).serve_forever()

elif role == "fetch":
    results = {}
    for url in sys.argv[2:]:
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                results[url] = {"ok": True, "body": json.load(resp)}
        except Exception as exc:
            results[url] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        results[url]["seconds"] = round(time.monotonic() - t0, 2)
    out(results=results)
'''


@pytest.fixture(scope="module")
def smoke_image(image_builder: Callable[..., str]) -> str:
    return image_builder(SMOKE_IMAGE, files={"smoke.py": SMOKE_SCRIPT})


def _run_to_completion(cluster: Cluster, namespace: str, name: str, image: str, args: list[str], **kw: object) -> dict:
    cluster.core.create_namespaced_pod(namespace, helpers.pod_manifest(
        name, image, ["python3", "/opt/test/smoke.py", *args], **kw))  # type: ignore[arg-type]
    helpers.wait_pod_phase(cluster.core, namespace, name, ("Succeeded",), timeout=120)
    logs = helpers.pod_logs(cluster.core, namespace, name)
    return json.loads(logs.strip().splitlines()[-1])


def test_pod_runs_python_script_from_base_image(cluster: Cluster, namespace: str, smoke_image: str) -> None:
    result = _run_to_completion(cluster, namespace, "hello", smoke_image, ["hello"])
    assert result["python"].startswith("3.11.")
    assert result["hostname"] == "hello"
    assert result["sum"] == 45


def test_service_account_reaches_api_and_rbac_refuses(cluster: Cluster, namespace: str, smoke_image: str) -> None:
    cluster.rbac.create_namespaced_role(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    cluster.rbac.create_namespaced_role_binding(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]})
    result = _run_to_completion(cluster, namespace, "api-client", smoke_image, ["api"], service_account="default")
    assert result["host"]  # the in-cluster config: KUBERNETES_SERVICE_HOST (10.96.0.1 on the local cluster)
    assert result["pods_status"] == 200, result
    assert "api-client" in result["pod_names"]
    assert result["dns_status"] == 200, result  # kubernetes.default.svc through cluster DNS
    assert result["secrets_status"] == 403, result  # RBAC: the SA may not read kube-system's secrets


def _off_node_probe_url(cluster: Cluster) -> str | None:
    """An address routed out of the pod network that stays on this machine: the top of docker0's subnet
    (no container has it). Without the egress guard a pod's SYN would go out on docker0 and time out; with
    it the pod is refused at once. Only for the local provider (its API server is on 10.200.0.1)."""
    if "10.200.0.1" not in cluster.api_client.configuration.host:
        return None
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "docker0"], capture_output=True, text=True,
                         check=False).stdout.split()
    if "inet" not in out:
        return None
    net = ipaddress.ip_interface(out[out.index("inet") + 1]).network
    return f"http://{net.broadcast_address - 1}:80/"


def test_pod_to_pod_by_ip_and_service_name(cluster: Cluster, namespace: str, smoke_image: str) -> None:
    labels = {"app": "smoke-server"}
    cluster.core.create_namespaced_pod(namespace, helpers.pod_manifest(
        "server", smoke_image, ["python3", "/opt/test/smoke.py", "serve"], labels=labels, ports=[8080]))
    cluster.core.create_namespaced_service(namespace, helpers.service_manifest("smoke", labels, 80, target_port=8080))
    cluster.core.create_namespaced_service(namespace, helpers.service_manifest("nobody", {"app": "none"}, 80))
    server_ip = helpers.wait_pod_ip(cluster.core, namespace, "server")
    helpers.wait_for("endpoints of service smoke", lambda: any(
        s.addresses for s in (cluster.core.read_namespaced_endpoints("smoke", namespace).subsets or [])), timeout=60)
    urls = [f"http://{server_ip}:8080/", "http://smoke/", f"http://smoke.{namespace}.svc.cluster.local/",
            "http://nobody/"]
    off_node = _off_node_probe_url(cluster)
    if off_node:
        urls.append(off_node)
    result = _run_to_completion(cluster, namespace, "client", smoke_image, ["fetch", *urls])["results"]
    print(json.dumps(result, indent=1))
    for url in urls[:3]:
        assert result[url]["ok"], (url, result[url])
        assert result[url]["body"] == {"server": "server"}
    # A Service without endpoints is refused at once (kube-proxy REJECT / the route guard): nothing leaves.
    assert not result["http://nobody/"]["ok"]
    assert result["http://nobody/"]["seconds"] < 5, result["http://nobody/"]
    if off_node:  # the egress guard refuses pod traffic that would leave the pod network
        assert not result[off_node]["ok"] and result[off_node]["seconds"] < 1, result[off_node]


def test_job_completes_and_pods_deleted_by_label(cluster: Cluster, namespace: str, smoke_image: str) -> None:
    labels = {"dok.dev/e2e-smoke": "job"}
    cluster.batch.create_namespaced_job(namespace, helpers.job_manifest(
        "smoke-job", smoke_image, ["python3", "/opt/test/smoke.py", "hello"], labels=labels, completions=2,
        parallelism=2))
    job = helpers.wait_job_complete(cluster.batch, namespace, "smoke-job", timeout=120)
    assert job.status.succeeded == 2
    pods = helpers.list_by_label(cluster, "pods", labels, namespace=namespace)
    assert len(pods) == 2 and all(p.status.phase == "Succeeded" for p in pods)
    assert [j.metadata.name for j in helpers.list_by_label(cluster, "jobs", labels, namespace=namespace)] == ["smoke-job"]
    started = time.monotonic()
    assert helpers.delete_by_label(cluster, "pods", labels, namespace=namespace) == 2
    helpers.wait_for("job pods gone", lambda: not helpers.list_by_label(cluster, "pods", labels, namespace=namespace),
                     timeout=90)
    print(f"job pods deleted by label in {time.monotonic() - started:.1f}s")


def test_port_forward_through_the_api_server(cluster: Cluster, namespace: str, smoke_image: str) -> None:
    """dok.kube.PortForward (the dashboard's and the result pick-up's tunnel) against the real API server."""
    import urllib.request

    from dok.kube import Kube, NotFound, PortForward

    kube = Kube.from_kubeconfig(helpers.kubeconfig_path())
    cluster.core.create_namespaced_pod(namespace, helpers.pod_manifest(
        "server", smoke_image, ["python3", "/opt/test/smoke.py", "serve"], ports=[8080]))
    helpers.wait_pod_ip(cluster.core, namespace, "server")
    helpers.wait_for("server ready", lambda: any(
        c.ready for c in (cluster.core.read_namespaced_pod("server", namespace).status.container_statuses or [])),
        timeout=60)
    with PortForward(kube, namespace=namespace, pod="server", port=8080) as fwd:
        bodies = [json.loads(urllib.request.urlopen(fwd.url("/"), timeout=20).read()) for _ in range(3)]
    assert bodies == [{"server": "server"}] * 3
    assert fwd.connections == 3 and not fwd.errors
    # Nothing listens on 9: that connection ends empty and the pod's error channel says why.
    with PortForward(kube, namespace=namespace, pod="server", port=9) as fwd:
        with pytest.raises(Exception):
            urllib.request.urlopen(fwd.url("/"), timeout=20).read()
        helpers.wait_for("the forward's error", lambda: fwd.errors, timeout=20)
    print("port 9:", fwd.errors)
    assert "9" in fwd.errors[0]
    with pytest.raises(NotFound, match="does not exist"):
        PortForward(kube, namespace=namespace, pod="nobody", port=8080).start()
