"""The lakehouse runs on an S3 API as on a folder: a real S3 server (moto) on loopback."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "lakehouse-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with one empty bucket."""
    import boto3

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.3)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def s3_root(spark, s3_endpoint, monkeypatch) -> str:
    """An s3a:// lakehouse root whose bucket lives on the loopback S3 server."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in {
        f"fs.s3a.bucket.{BUCKET}.endpoint": s3_endpoint,
        f"fs.s3a.bucket.{BUCKET}.access.key": "test",
        f"fs.s3a.bucket.{BUCKET}.secret.key": "test",
        f"fs.s3a.bucket.{BUCKET}.endpoint.region": "us-east-1",
        f"fs.s3a.bucket.{BUCKET}.path.style.access": "true",
        f"fs.s3a.bucket.{BUCKET}.connection.ssl.enabled": "false",
        f"fs.s3a.bucket.{BUCKET}.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
    }.items():
        hadoop.set(key, value)
    root = f"s3a://{BUCKET}/run-{time.monotonic_ns()}"
    monkeypatch.setenv("LAKEHOUSE_ROOT", root)
    return root


def test_bronze_and_silver_build_on_an_s3a_root(spark, s3_root):
    from devtools.generate_purchases import generate
    from spark_jobs.catalog import BRONZE_PURCHASES, SILVER_PURCHASES, SILVER_QUARANTINE
    from spark_jobs.jobs import build_silver, ingest_bronze
    from spark_jobs.quality.accounting import check_accounting

    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    summary = generate(spark, s3_root, start, end, users=40, seed=11)
    dates = ["--root", s3_root, "--start", str(start), "--end", str(end)]
    assert ingest_bronze.main(dates) == 0
    assert build_silver.main(dates) == 0

    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(s3_root)).count()
    silver = spark.read.format("delta").load(SILVER_PURCHASES.path(s3_root)).count()
    quarantined = spark.read.format("delta").load(SILVER_QUARANTINE.path(s3_root)).count()
    assert bronze == summary.events_written
    assert silver > 0 and quarantined > 0
    rows = check_accounting(spark, s3_root, start, end)
    assert sum(r.bronze for r in rows) == bronze
    assert all(r.balanced for r in rows)
