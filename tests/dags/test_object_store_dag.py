"""purchases_daily on an ``s3a://`` lakehouse on a real S3 server (s3proxy on loopback).

Everything of a day goes through the S3 API: the landing sensor lists the landing files
with the ``aws_default`` connection, the jobs run on a Spark Connect server whose S3A
settings point at the server, the Delta tables, staging, reports and the nothing-lost
check live in the bucket. The tables must equal those of the same days on a local folder.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import generate_purchases
from spark_jobs import connect_server
from spark_jobs.config import Settings
from tests.factories import (
    S3_BUCKET,
    ConnectServer,
    connect_connection,
    differences,
    free_port,
    published_rows,
    read_s3_with,
    run_daily,
    run_range,
    upload_landing,
    use_s3_server,
)

DAYS = (dt.date(2026, 4, 1), dt.date(2026, 4, 2))


@pytest.fixture(scope="module")
def s3_root(s3_server) -> str:
    return f"s3a://{S3_BUCKET}/daily-{time.monotonic_ns()}"


@pytest.fixture(scope="module")
def s3_connect(s3_server, s3_root, tmp_path_factory) -> Iterator[ConnectServer]:
    """A Connect server whose S3A settings (endpoint, keys) are the S3 server's."""
    home = tmp_path_factory.mktemp("s3-connect")
    port = free_port()
    token = secrets.token_urlsafe(24)
    store_env = s3_server.environment(s3_root)
    settings = Settings.from_env(
        store_env, spark_master="local[2]", shuffle_partitions=2, driver_memory="2g"
    )
    env = {**os.environ, **store_env, connect_server.TOKEN_ENV: token}
    log_path = home / "server.log"
    process = connect_server.start(settings, log_path, port=port, env=env)
    try:
        connect_server.wait_ready(process, log_path, port=port)
        yield ConnectServer(connect_server.remote_url(port=port), token)
    finally:
        connect_server.stop(process)


@pytest.fixture(scope="module")
def feed(airflow_db, tmp_path_factory) -> Path:
    from tests.factories import reset_metadata_db

    reset_metadata_db()  # Asset names are unique: this module's root owns them
    folder = tmp_path_factory.mktemp("s3-feed")
    argv = ["--root", str(folder), "--start", str(DAYS[0]), "--end", str(DAYS[-1])]
    assert generate_purchases.main([*argv, "--users", "40", "--skip-dates", "none"]) == 0
    return folder


@pytest.fixture
def s3a_reads(spark, s3_server):
    """The test's own session reads the bucket (per-bucket S3A settings)."""
    read_s3_with(spark, s3_server)
    return spark


def test_the_daily_dag_on_an_s3a_root_builds_the_tables_of_a_local_run(
    s3a_reads, s3_server, s3_root, s3_connect, feed, tmp_path, monkeypatch
) -> None:
    from plugins.lakehouse_reports import read_index

    assert upload_landing(s3_server, feed, s3_root) > 0
    local = str(tmp_path / "local")
    shutil.copytree(feed / "landing", Path(local) / "landing")
    # The test process parses the DAG and runs the sensor: it has the store's keys only
    # through the aws_default connection, as an Airflow worker would.
    airflow_env = {
        "AIRFLOW_CONN_SPARK_DEFAULT": connect_connection(s3_connect),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.aws_connection(),
    }
    run_range(local, DAYS[0], DAYS[-1])
    for day in DAYS:
        states = run_daily(s3_root, day, **airflow_env)
        assert set(states.values()) == {"success"}, states

    assert differences(published_rows(s3a_reads, s3_root), published_rows(s3a_reads, local)) == []
    use_s3_server(monkeypatch, s3_server)  # the reports page reads the store as a job does
    # The gate reports (what the reports page lists) are in the bucket, one per stage-day:
    # each day's run validated every table the local rebuild (one run per stage) did.
    index = read_index(s3_root)
    gated = sorted(entry["table"] for entry in read_index(local))
    assert gated
    for day in DAYS:
        assert sorted(e["table"] for e in index if e["start"] == str(day)) == gated, day
    assert len(index) == len(DAYS) * len(gated)
    assert all(entry["success"] for entry in index)
