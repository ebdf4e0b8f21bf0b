"""Jobs run as Spark Connect clients of a long-lived server (``spark_jobs.connect_server``).

Each job here runs in a process of its own, as an Airflow task on a ``spark_connect``
connection runs it: ``python -m spark_jobs.jobs.<job>`` with ``SPARK_REMOTE`` set, no
JVM in that process. The tables must equal those of the same runs in an embedded session.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools import generate_purchases
from spark_jobs.cli import EXIT_GATE_FAILED
from spark_jobs.config import PROJECT_ROOT
from tests.factories import client_run, differences, published_rows, run_day

DAYS = (dt.date(2026, 3, 1), dt.date(2026, 3, 2))
STAGE_MODULES = ("ingest_bronze", "build_silver", "build_gold", "build_features")


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("connect-feed")
    argv = ["--root", str(folder), "--start", str(DAYS[0]), "--end", str(DAYS[-1])]
    assert generate_purchases.main([*argv, "--users", "40", "--skip-dates", "none"]) == 0
    return folder


def with_feed(feed: Path, root: Path) -> str:
    shutil.copytree(feed / "landing", root / "landing")
    return str(root)


@pytest.fixture(scope="module")
def embedded(spark, feed, tmp_path_factory) -> dict[dt.date, dict[str, list[tuple]]]:
    """The published rows after each day, every stage run in the embedded session."""
    root = with_feed(feed, tmp_path_factory.mktemp("embedded"))
    after = {}
    for day in DAYS:
        run_day(root, day)
        after[day] = published_rows(spark, root)
    return after


def test_every_stage_on_the_server_builds_the_tables_of_an_embedded_run(
    spark, connect_server, feed, embedded, tmp_path
) -> None:
    # The first day embedded, the next one on the server: every stage's incremental path
    # (merges onto published tables) runs as a client. The SIGTERM test below runs a
    # first day on the server.
    remote = with_feed(feed, tmp_path / "remote")
    run_day(remote, DAYS[0])
    for module in STAGE_MODULES:
        completed = client_run(connect_server, module, remote, DAYS[1])
        assert completed.returncode == 0, f"{module} {DAYS[1]}:\n{completed.stderr[-3000:]}"
        assert "Traceback" not in completed.stderr, completed.stderr[-3000:]

    assert differences(published_rows(spark, remote), embedded[DAYS[-1]]) == []


def test_a_client_without_the_servers_token_is_refused_in_one_line(
    connect_server, lakehouse
) -> None:
    completed = client_run(connect_server, "build_gold", lakehouse, DAYS[0], token="wrong")
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert "Spark Connect server" in completed.stderr
    assert "SPARK_CONNECT_AUTHENTICATE_TOKEN" in completed.stderr


def test_a_gate_failure_on_the_server_exits_with_the_gate_code(
    connect_server, feed, tmp_path
) -> None:
    root = with_feed(feed, tmp_path / "lakehouse")
    # A client needs no jar cache of its own: the server holds the jars.
    no_jars = str(tmp_path / "no-jars")
    completed = client_run(
        connect_server, "ingest_bronze", root, DAYS[0], LAKEHOUSE_JARS_DIR=no_jars
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    # The generated day has defects: a quarantine share of one in a million fails silver.
    completed = client_run(
        connect_server,
        "build_silver",
        root,
        DAYS[0],
        LAKEHOUSE_GATE_QUARANTINE_FAIL_SHARE="0.000001",
        LAKEHOUSE_JARS_DIR=no_jars,
    )
    assert completed.returncode == EXIT_GATE_FAILED, completed.stderr[-2000:]
    assert "gate failed" in completed.stderr
    assert not Path(root, "silver", "purchases").exists(), "a failed gate published nothing"


def test_sigterm_interrupts_the_jobs_queries_and_a_rerun_finishes_the_day(
    spark, connect_server, feed, embedded, tmp_path
) -> None:
    remote = with_feed(feed, tmp_path / "remote")
    for module in STAGE_MODULES[:1]:
        assert client_run(connect_server, module, remote, DAYS[0]).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    env.update(connect_server.client_environment())
    command = ["-m", "spark_jobs.jobs.build_silver", "--root", remote, "--start", str(DAYS[0])]
    job = subprocess.Popen(
        [sys.executable, *command],
        env=env,
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert job.stderr is not None
    for line in job.stderr:  # killed while it stages its rows on the server
        if "staging silver.purchases" in line:
            break
    job.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert job.wait(timeout=120) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 60, "the job did not stop promptly"

    for module in STAGE_MODULES[1:]:
        completed = client_run(connect_server, module, remote, DAYS[0])
        assert completed.returncode == 0, f"{module}:\n{completed.stderr[-3000:]}"
    assert differences(published_rows(spark, remote), embedded[DAYS[0]]) == []
