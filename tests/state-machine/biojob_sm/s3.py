"""The S3-compatible server the jobs stage through: SeaweedFS (`weed mini`) on loopback.

Started as `crates/biojob-testkit/src/server.rs` and `benches/s3-server.sh` start it: loopback
only, free ports, no telemetry, credentials from the environment it is started with.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config


class S3ServerError(Exception):
    pass


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class S3Server:
    """A running `weed mini`; `env()` is what a client needs to reach it."""

    def __init__(self, data_dir: Path, weed: str | None = None) -> None:
        self.weed = weed or os.environ.get("BIOJOB_WEED") or shutil.which("weed") or "weed"
        self.data_dir = data_dir
        self.access_key = "biojob-harness-key"
        ports = _free_ports(11)
        self.secret_key = f"biojob-harness-secret-{ports[1]}"
        self.endpoint = f"http://127.0.0.1:{ports[6]}"
        names = [
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port", "admin.port",
            "admin.port.grpc",
        ]  # fmt: skip
        self._argv = [
            self.weed,
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in zip(names, ports, strict=True)),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self):  # noqa: ANN201 (boto3's generated client type)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.with_suffix(".log"), "wb")  # noqa: SIM115 (kept for the server's life)
        environment = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        try:
            self._process = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        except FileNotFoundError as missing:
            raise S3ServerError(
                f"{self.weed}: not found; scripts/install-s3-server.sh installs SeaweedFS "
                "(BIOJOB_WEED names another binary)"
            ) from missing
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_buckets()
                return
            except Exception as error:  # noqa: BLE001 (any failure means not ready yet)
                if self._process.poll() is not None:
                    raise S3ServerError(
                        f"{self.weed} exited ({self._process.returncode}); log: "
                        f"{self.data_dir.with_suffix('.log')}"
                    ) from error
                if time.monotonic() > deadline:
                    self.stop()
                    raise S3ServerError(f"{self.weed} not ready after {timeout} s") from error
                time.sleep(0.2)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
