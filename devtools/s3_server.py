"""An S3-compatible server on loopback for development and tests: s3proxy, files on disk.

    python -m devtools.s3_server            # make s3: 127.0.0.1:9000, bucket "lakehouse"

s3proxy (Apache License 2.0, jars from ``include/s3proxy/pom.xml`` in ``.cache/s3proxy``)
serves the S3 API over a folder (``jclouds`` file-system backend): real HTTP, real
signatures (AWS v2 and v4), multipart uploads, and conditional writes (``If-None-Match``,
``If-Match``), which the object-store writer lock needs. It prints the environment a job
needs (``LAKEHOUSE_ROOT=s3a://…``, endpoint and keys) and the ``aws_default`` connection
for Airflow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from spark_jobs.config import PROJECT_ROOT
from spark_jobs.connect_server import log_tail

HOST = "127.0.0.1"
JARS_DIR = PROJECT_ROOT / ".cache" / "s3proxy"
MAIN_CLASS = "org.gaul.s3proxy.Main"
DEFAULT_HOME = PROJECT_ROOT / ".s3"
DEFAULT_BUCKET = "lakehouse"
REGION = "us-east-1"


class S3ServerDidNotStart(RuntimeError):
    """The server's jars are missing, or it exited or never opened its port."""


@dataclass
class S3Server:
    """One s3proxy process: its port, keys and the folder its buckets live in."""

    home: Path
    port: int = 9000
    access_key: str = "lakehouse"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL for boto3 and S3A."""
        return f"http://{HOST}:{self.port}"

    def environment(self, root: str) -> dict[str, str]:
        """What a job needs to use ``root`` (an ``s3a://`` URI) on this server."""
        return {
            "LAKEHOUSE_ROOT": root,
            "LAKEHOUSE_S3_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
        }

    def aws_connection(self) -> str:
        """The ``aws_default`` connection of this server, as Airflow's JSON form."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint, "region_name": REGION},
            }
        )

    def client(self):  # type: ignore[no-untyped-def]
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def start(self, timeout: float = 60) -> None:
        """Start the server; return once it answers S3 requests."""
        if not any(JARS_DIR.glob("s3proxy-*.jar")):
            raise S3ServerDidNotStart(f"no s3proxy jars in {JARS_DIR}: run `make setup`")
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        properties = self.home / "s3proxy.properties"
        properties.write_text(
            "\n".join(
                [
                    f"s3proxy.endpoint=http://{HOST}:{self.port}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={self.access_key}",
                    f"s3proxy.credential={self.secret_key}",
                    "jclouds.provider=filesystem-nio2",
                    f"jclouds.filesystem.basedir={data}",
                    "",
                ]
            )
        )
        properties.chmod(0o600)  # it holds the secret key
        log_path = self.home / "s3proxy.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["java", "-Xmx512m", "-cp", f"{JARS_DIR}/*", MAIN_CLASS,
                 "--properties", str(properties)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3ServerDidNotStart(
                    f"s3proxy exited with code {self.process.returncode}:\n" + log_tail(log_path)
                )
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            time.sleep(0.3)
        self.stop()
        raise S3ServerDidNotStart(f"s3proxy did not open {self.endpoint}:\n" + log_tail(log_path))

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` if it does not exist yet."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


def main(argv: list[str] | None = None) -> int:
    """``make s3``: the server in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.s3_server", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="where buckets live")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    args = parser.parse_args(argv)
    server = S3Server(args.home, port=args.port)
    server.start()
    try:
        server.create_bucket(args.bucket)
        print(f"S3 server {server.endpoint}, bucket {args.bucket}, files in {args.home}/data")
        for key, value in server.environment(f"s3a://{args.bucket}/lakehouse").items():
            print(f"export {key}={value}")
        print(f"export AIRFLOW_CONN_AWS_DEFAULT='{server.aws_connection()}'", flush=True)
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
