"""S3 secrets come from one source and never reach a command line, a log or a report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.factories import S3_BUCKET as BUCKET

# Airflow reads its configuration on first import: a throw-away home when this file runs
# alone (tests/dags/conftest.py sets its own when the DAG tests share the process).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="lakehouse-secrets-tests-"))

SECRET = "FAKE-SECRET-9f8e7d"
ACCESS_KEY = "FAKE-ACCESS-KEY-ID"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-03-01"


def _aws_connection(endpoint: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )


@pytest.fixture
def submitted(monkeypatch):
    """What spark-submit would have been started with: the command line and environment."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    seen: dict[str, object] = {}

    def fake_submit(hook: SparkSubmitHook, application: str = "", **_: object) -> None:
        seen["command"] = hook._build_spark_submit_command(application)
        seen["env"] = dict(hook._env or {})

    monkeypatch.setattr(SparkSubmitHook, "submit", fake_submit)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    return seen


def _run_operator(root: str) -> None:
    from include.operators import LakehouseSparkSubmitOperator

    operator = LakehouseSparkSubmitOperator(
        task_id="bronze_purchases",
        job="ingest_bronze",
        lakehouse_root=root,
        job_args=["--start", DAY],
    )
    operator.execute({"run_id": "test", "ds": DAY, "outlet_events": {}})


def test_operator_hands_connection_secrets_to_the_job_only_through_its_environment(
    submitted, monkeypatch, caplog
):
    from airflow.sdk._shared.secrets_masker import redact

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", _aws_connection("http://127.0.0.1:9000"))
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    _run_operator(f"s3a://{BUCKET}/lake")

    env = submitted["env"]
    assert env["AWS_ACCESS_KEY_ID"] == ACCESS_KEY
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["LAKEHOUSE_S3_ENDPOINT"] == "http://127.0.0.1:9000"
    assert env["AWS_REGION"] == "us-east-1"
    command = " ".join(submitted["command"])
    assert SECRET not in command and ACCESS_KEY not in command
    assert SECRET not in caplog.text
    # Registered with the secrets masker: a task log line carrying it shows *** instead.
    assert redact(f"leaked {SECRET} here") == "leaked *** here"


def test_operator_falls_back_to_the_environment_without_a_connection(submitted, monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact

    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    other = "FAKE-ENV-SECRET-1a2b3c"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", other)
    _run_operator(f"s3a://{BUCKET}/lake")

    # spark-submit inherits the worker's environment; nothing is copied onto the command.
    assert "AWS_SECRET_ACCESS_KEY" not in submitted["env"]
    assert other not in " ".join(submitted["command"])
    assert redact(f"leaked {other}") == "leaked ***"


def test_operator_passes_no_credentials_for_a_local_root(submitted, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", _aws_connection("http://127.0.0.1:9000"))
    _run_operator(str(tmp_path))
    assert "AWS_SECRET_ACCESS_KEY" not in submitted["env"]


def _put_landing_file(server, prefix: str) -> None:
    client = server.client()
    line = {
        "event_id": "e1",
        "order_id": "o1",
        "user_id": "u1",
        "event_type": "purchase",
        "event_time": f"{DAY}T10:00:00Z",
        "sku": "sku-1",
        "category": "books",
        "quantity": 1,
        "unit_price": "9.99",
        "currency": "USD",
    }
    body = json.dumps(line) + "\nnot json\n"
    client.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/landing/purchases/dt={DAY}/part-0.jsonl",
        Body=body.encode(),
    )


def _stored_objects(server, prefix: str) -> dict[str, bytes]:
    client = server.client()
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = body
    return objects


def test_a_job_on_an_s3a_root_never_writes_its_secret_to_logs_or_reports(s3_server):
    prefix = f"secrets-{time.monotonic_ns()}"
    secret = s3_server.secret_key
    _put_landing_file(s3_server, prefix)
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "LAKEHOUSE_ROOT": f"s3a://{BUCKET}/{prefix}",
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "LAKEHOUSE_S3_ENDPOINT": s3_server.endpoint,
        "LAKEHOUSE_LOG_LEVEL": "DEBUG",  # the most a job ever logs
        "SPARK_MASTER": "local[1]",
        "SPARK_DRIVER_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    job = subprocess.run(
        [sys.executable, "-m", "spark_jobs.jobs.ingest_bronze", "--start", DAY],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-3000:]
    assert secret not in output

    stored = _stored_objects(s3_server, prefix)
    reports = [key for key in stored if "/_reports/" in key]
    assert reports, f"the gate wrote no report under {prefix}/_reports/"
    leaked = [key for key, body in stored.items() if secret.encode() in body]
    assert leaked == []
