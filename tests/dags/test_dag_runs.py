"""Real runs of purchases_daily (``dag.test()``: every task really runs) on a small
generated data set, against a SQLite metadata DB.

The first day runs as ``make airflow`` runs it, every job a client of a Spark Connect
server (a ``spark_connect`` connection); the second through spark-submit, one JVM per task
(a ``spark`` connection), as on a cluster master.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_jobs.config import EXPECTATIONS_DIR
from spark_jobs.quality.gates import GateSettings
from tests.alert_sinks import http_connection, webhook
from tests.factories import connect_connection, ops_metrics_on, run_daily

DAY_1 = dt.date(2026, 1, 1)
DAY_2 = dt.date(2026, 1, 2)
STAGE_TASKS = ("bronze_purchases", "silver_purchases", "gold_user_daily", "gold_user_features")
ASSET_TABLES = (
    "bronze.purchases",
    "silver.purchases",
    "silver.quarantine",
    "gold.user_daily",
    "gold.user_features",
    "gold.user_features_history",
)


def table_version(spark, root: str, name: str) -> int:
    """Newest Delta version of a catalog table, read with Spark."""
    from delta.tables import DeltaTable

    from spark_jobs.catalog import TABLES_BY_NAME

    table = DeltaTable.forPath(spark, TABLES_BY_NAME[name].path(root))
    return int(table.history(1).collect()[0]["version"])


def failed_validations(root: str) -> list[dict]:
    """Index entries of the validations that failed under ``root``: what a gate rejected."""
    from plugins.lakehouse_reports import read_index

    return [entry for entry in read_index(root) if not entry.get("success")]


def landed_lines(root: str, day: dt.date) -> int:
    """Lines landed for a day, counted straight from the files."""
    from spark_jobs.catalog import landing_day_path

    return sum(
        len(path.read_text().splitlines())
        for path in Path(landing_day_path(root, day)).glob("*.jsonl")
    )


@pytest.fixture(scope="module", autouse=True)
def recording() -> Iterator[None]:
    """The stage tasks record their runs in ops.stage_runs, as in production."""
    with ops_metrics_on():
        yield


@pytest.fixture(scope="module")
def landed(spark, airflow_db, tmp_path_factory) -> str:
    """Two days of small generated landing files (defects included), on a fresh metadata DB.

    Asset names are unique in Airflow: the table Assets other modules registered for
    their own lakehouse roots would leave this root's Assets inactive, and Airflow
    refuses to run a task whose outlets are inactive.
    """
    from devtools import generate_purchases
    from tests.factories import reset_metadata_db

    reset_metadata_db()

    root = str(tmp_path_factory.mktemp("lakehouse"))
    args = ["--root", root, "--start", str(DAY_1), "--end", str(DAY_2), "--users", "150"]
    assert generate_purchases.main([*args, "--skip-dates", "none"]) == 0
    return root


@pytest.fixture(scope="module")
def first_day(landed, connect_server) -> dict[str, str]:
    """purchases_daily run for DAY_1 on the fresh lakehouse, on the Spark Connect server."""
    return run_daily(landed, DAY_1, AIRFLOW_CONN_SPARK_DEFAULT=connect_connection(connect_server))


def test_daily_run_builds_every_stage_of_its_landing_date(spark, landed, first_day) -> None:
    from pyspark.sql import functions as F

    from spark_jobs.catalog import BRONZE_PURCHASES, GOLD_USER_DAILY, GOLD_USER_FEATURES

    expected = {"landing_purchases": "success", **dict.fromkeys(STAGE_TASKS, "success")}
    assert first_day == expected, failed_validations(landed)
    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(landed))
    assert bronze.where(F.col("_landing_date") == DAY_1).count() == landed_lines(landed, DAY_1)
    assert bronze.where(F.col("_landing_date") != DAY_1).count() == 0
    gold = spark.read.format("delta").load(GOLD_USER_DAILY.path(landed))
    assert gold.count() > 0
    features = spark.read.format("delta").load(GOLD_USER_FEATURES.path(landed))
    # Late events of the landing date also give snapshots of the days they happened on.
    as_of = {r["as_of_date"] for r in features.select("as_of_date").distinct().collect()}
    assert max(as_of) == DAY_1
    assert min(as_of) >= DAY_1 - dt.timedelta(days=GateSettings().max_lateness_days)


def test_each_stage_task_records_its_run_in_ops_stage_runs(landed, first_day) -> None:
    from spark_jobs.catalog import OPS_STAGE_RUNS
    from spark_jobs.storage import delta_rows

    runs = [r for r in delta_rows.read_rows(OPS_STAGE_RUNS.path(landed))
            if r["end_date"] == DAY_1]  # fmt: skip
    assert sorted(r["task_id"] for r in runs) == sorted(STAGE_TASKS)
    assert {r["dag_id"] for r in runs} == {"purchases_daily"}
    assert len({r["dag_run_id"] for r in runs}) == 1 and runs[0]["dag_run_id"]
    assert {r["attempt"] for r in runs} == {1}
    assert {r["status"] for r in runs} == {"published"}


def test_stage_tasks_record_the_published_delta_version_on_the_assets(
    spark, landed, first_day
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from include.dag_factory import TABLE_PATHS, table_uri

    with create_session() as session:
        events = {
            uri: extra
            for uri, extra in session.execute(
                select(AssetModel.uri, AssetEvent.extra)
                .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
                .where(AssetEvent.source_dag_id == "purchases_daily")
                .order_by(AssetEvent.id)
            )
        }
    for name in ASSET_TABLES:
        extra = events[table_uri(landed, TABLE_PATHS[name])]
        assert extra["delta_version"] == table_version(spark, landed, name), name
        assert extra["gate"] == "passed"
        assert extra["logical_date"] == str(DAY_1)
        assert extra["rows_written"] is None or extra["rows_written"] >= 0
        if Path(EXPECTATIONS_DIR, name.replace(".", "_") + ".json").is_file():
            assert extra["gate_report"]["success"] is True, name
            assert Path(extra["gate_report"]["report"]).is_file(), name


def test_failing_gate_publishes_nothing_and_stops_the_tasks_after_it(
    spark, landed, first_day
) -> None:
    from pyspark.sql import functions as F

    from spark_jobs.catalog import BRONZE_PURCHASES

    before = {name: table_version(spark, landed, name) for name in ASSET_TABLES}
    # A row-count band of exactly yesterday's rows: DAY_2 lands a different number of
    # lines, so the first gate of the run rejects it.
    assert landed_lines(landed, DAY_2) != landed_lines(landed, DAY_1)
    with webhook() as (port, alerted):
        states = run_daily(
            landed,
            DAY_2,
            LAKEHOUSE_GATE_ROW_COUNT_MIN_BASELINE="1",
            LAKEHOUSE_GATE_ROW_COUNT_FAIL_RATIO="1",
            AIRFLOW_CONN_LAKEHOUSE_ALERTS=http_connection(port),
        )

    assert states == {
        "landing_purchases": "success",
        "bronze_purchases": "failed",
        **dict.fromkeys(STAGE_TASKS[1:], "upstream_failed"),
    }
    assert {name: table_version(spark, landed, name) for name in ASSET_TABLES} == before
    # The failure hook told people, once, naming the task and the gate.
    assert [(a["kind"], a["task_id"], a["logical_date"]) for a in alerted.items] == [
        ("gate_failed", "bronze_purchases", str(DAY_2))
    ]
    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(landed))
    assert bronze.where(F.col("_landing_date") == DAY_2).count() == 0
    # Report folders are named by run: the dates, then the Airflow run.
    reports = Path(landed, "_reports", "bronze_purchases")
    assert list(reports.glob(f"{DAY_2}_{DAY_2}__*/*/report.html")), (
        "the failed gate keeps its report"
    )
