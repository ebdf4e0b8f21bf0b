"""Airflow in production shape: the metadata DB on PostgreSQL (a real server on loopback),
the LocalExecutor, the triggerer running, and a backfill of purchases_daily scheduled by
the real scheduler (not ``dag.test()``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import generate_purchases
from devtools.airflow_local import AirflowLocal, running
from devtools.postgres import LocalPostgres
from tests.alert_sinks import http_connection, webhook
from tests.factories import differences, free_port, published_rows, run_range

DAG_ID = "purchases_daily"
# One logical date: what PostgreSQL must carry is the scheduler, executor, triggerer and
# DAG processor of a real backfill run, and one run has them all.
DAYS = (dt.date(2026, 6, 1),)


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    # Outside pytest's private temp folder: the server runs as the postgres user under root.
    home = Path(tempfile.mkdtemp(prefix="lakehouse-postgres-"))
    server = LocalPostgres(home, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pg-feed")
    argv = ["--root", str(folder), "--start", str(DAYS[0]), "--end", str(DAYS[-1])]
    assert generate_purchases.main([*argv, "--users", "40", "--skip-dates", "none"]) == 0
    return folder


@pytest.fixture(scope="module")
def backfilled(
    postgres, feed, tmp_path_factory
) -> Iterator[tuple[str, list[dict], list, list[dict]]]:
    """A backfill of DAYS on a fresh Airflow whose metadata DB is ``postgres``."""
    import psycopg2

    root = tmp_path_factory.mktemp("pg-lakehouse")
    shutil.copytree(feed / "landing", root / "landing")
    saved = os.environ.pop("AIRFLOW_CONN_SPARK_DEFAULT", None)  # the Connect server of its own
    # A backfill of June is far past its publish deadline: let backfills alert, to a
    # webhook, so the triggerer's deadline callback shows up here.
    sink = contextlib.ExitStack()
    port, alerted = sink.enter_context(webhook())
    os.environ.update(
        AIRFLOW_CONN_LAKEHOUSE_ALERTS=http_connection(port), LAKEHOUSE_ALERT_RUN_TYPES="backfill"
    )
    airflow = AirflowLocal(
        home=tmp_path_factory.mktemp("pg-airflow"),
        lakehouse_root=str(root),
        port=free_port(),
        connect_port=free_port(),
        dag_refresh_seconds=5,
        database_url=postgres.url,
    )
    try:
        with running(airflow, timeout=300) as live:
            client = live.client()
            client.wait_for_dag(DAG_ID)
            client.set_paused(DAG_ID, False)
            client.create_backfill(DAG_ID, str(DAYS[0]), str(DAYS[-1]))
            runs: list[dict] = []
            while len(runs) < len(DAYS) or any(
                r["state"] not in ("success", "failed") for r in runs
            ):
                runs = [r for r in client.dag_runs(DAG_ID) if r["run_type"] == "backfill"]
                time.sleep(3)
            deadline = time.monotonic() + 120
            while len({a["run_id"] for a in alerted.items}) < len(DAYS):
                assert time.monotonic() < deadline, f"deadline alerts: {alerted.items}"
                time.sleep(2)
            url = postgres.url.replace("+psycopg2", "")
            with psycopg2.connect(url) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT job_type, state FROM job WHERE state = 'running'")
                jobs = cursor.fetchall()
    finally:
        if saved is not None:
            os.environ["AIRFLOW_CONN_SPARK_DEFAULT"] = saved
        for key in ("AIRFLOW_CONN_LAKEHOUSE_ALERTS", "LAKEHOUSE_ALERT_RUN_TYPES"):
            os.environ.pop(key, None)
        sink.close()
    assert not (airflow.home / "airflow.db").exists()  # nothing fell back to SQLite
    yield str(root), runs, jobs, alerted.items


def test_a_backfill_on_postgres_with_the_local_executor_succeeds(backfilled) -> None:
    _, runs, _, _ = backfilled
    assert sorted(r["logical_date"][:10] for r in runs) == [str(d) for d in DAYS]
    assert {r["state"] for r in runs} == {"success"}, runs


def test_the_scheduler_dag_processor_and_triggerer_run_against_postgres(backfilled) -> None:
    _, _, jobs, _ = backfilled
    kinds = {kind for kind, _ in jobs}
    assert {"SchedulerJob", "TriggererJob", "DagProcessorJob"} <= kinds, jobs


def test_the_triggerer_ran_the_deadline_callback_of_each_late_run(backfilled) -> None:
    _, runs, _, alerted = backfilled
    assert sorted(a["run_id"] for a in alerted) == sorted(r["dag_run_id"] for r in runs)
    assert {a["kind"] for a in alerted} == {"deadline_missed"}
    assert {a["detail"]["run_type"] for a in alerted} == {"backfill"}


def test_the_tables_equal_those_of_the_same_days_run_in_order(spark, backfilled, feed, tmp_path):
    root, _, _, _ = backfilled
    reference = tmp_path / "reference"
    shutil.copytree(feed / "landing", reference / "landing")
    run_range(str(reference), DAYS[0], DAYS[-1])
    assert differences(published_rows(spark, root), published_rows(spark, str(reference))) == []
