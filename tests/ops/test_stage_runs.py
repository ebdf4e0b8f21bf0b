"""ops.stage_runs: every stage run writes one row about itself, and never fails for it."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from devtools.generate_purchases import generate
from spark_jobs.catalog import (
    BRONZE_PURCHASES,
    GOLD_USER_DAILY,
    OPS_STAGE_RUNS,
    SILVER_PURCHASES,
    SILVER_QUARANTINE,
    TABLES_BY_NAME,
)
from spark_jobs.cli import EXIT_GATE_FAILED, run_cli
from spark_jobs.jobs import build_silver, ingest_bronze
from spark_jobs.ops import report
from spark_jobs.quality.wap import latest_version
from spark_jobs.storage import delta_rows
from tests.factories import ops_metrics_on, run_day

DAYS = (dt.date(2026, 5, 1), dt.date(2026, 5, 2))
STAGES = ("bronze", "silver", "gold_daily", "features")


@pytest.fixture(scope="module", autouse=True)
def recording() -> Iterator[None]:
    """Every stage run of this module records its row (the default outside the tests)."""
    with ops_metrics_on():
        yield


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory) -> str:
    """Two generated days (defects, retries, late events), every stage run per day."""
    root = str(tmp_path_factory.mktemp("ops") / "lakehouse")
    generate(spark, root, DAYS[0], DAYS[-1], users=40, seed=5, events_per_day=200,
             defect_rate=0.05, retry_rate=0.05, skip_dates=())  # fmt: skip
    for day in DAYS:
        run_day(root, day)
    return root


@pytest.fixture(scope="module")
def runs(lakehouse) -> list[dict]:
    return delta_rows.read_rows(OPS_STAGE_RUNS.path(lakehouse))


def run_of(runs: list[dict], stage: str, day: dt.date) -> dict:
    (row,) = [r for r in runs if r["stage"] == stage and r["end_date"] == day]
    return row


def test_every_stage_run_writes_one_row_and_spark_reads_the_same_rows(spark, lakehouse, runs):
    assert sorted((r["end_date"], r["stage"]) for r in runs) == sorted(
        (day, stage) for day in DAYS for stage in STAGES
    )
    by_spark = spark.read.format("delta").load(OPS_STAGE_RUNS.path(lakehouse)).collect()
    assert sorted(r["run_key"] + r["stage"] for r in by_spark) == sorted(
        r["run_key"] + r["stage"] for r in runs
    )
    for run in runs:
        assert run["status"] == "published", run
        assert run["gate_passed"] is True
        assert run["attempt"] == 1 and run["dag_run_id"] is None  # run by hand
        parts = [run[f"{p}_s"] for p in ("build", "gate", "publish")]
        assert all(p is not None and p >= 0 for p in parts), run
        assert sum(parts) <= run["duration_s"] + 0.01
        assert run["ended_at"] >= run["started_at"]


def test_the_data_tables_leave_the_metrics_table_out(runs):
    assert OPS_STAGE_RUNS.name not in TABLES_BY_NAME


def test_versions_bytes_and_rows_match_what_was_published(spark, lakehouse, runs):
    last = {r["stage"]: r for r in runs if r["end_date"] == DAYS[-1]}
    for run in last.values():
        assert run["output_versions"], run["stage"]
        for name, version in dict(run["output_versions"]).items():
            # The last day's run is the newest commit of every table it wrote.
            assert version == latest_version(spark, TABLES_BY_NAME[name].path(lakehouse))
        assert run["bytes_written"] > 0 and run["files_written"] > 0
    bronze = last["bronze"]
    landed = spark.read.format("delta").load(BRONZE_PURCHASES.path(lakehouse))
    assert bronze["rows_out"] == landed.where(F.col("_landing_date") == DAYS[-1]).count()
    assert bronze["rows_in"] == bronze["rows_out"]
    silver_inputs = dict(last["silver"]["input_versions"] or {})
    assert silver_inputs, "silver records the versions it read"


def test_the_row_count_band_position_is_the_days_rows_against_the_day_before(
    spark, lakehouse, runs
):
    landed = spark.read.format("delta").load(BRONZE_PURCHASES.path(lakehouse))
    first, second = (landed.where(F.col("_landing_date") == day).count() for day in DAYS)
    assert run_of(runs, "bronze", DAYS[0])["row_band_position"] is None  # no day before
    expected = math.log(second / first) / math.log(10)  # the default fail ratio
    assert run_of(runs, "bronze", DAYS[1])["row_band_position"] == pytest.approx(expected, 1e-3)
    # 40 customers make fewer trailing snapshots than the drift check's minimum.
    assert {r["feature_psi"] for r in runs if r["stage"] == "features"} == {None}


def test_silver_counts_balance_and_quarantine_is_broken_down_by_reason(spark, lakehouse, runs):
    first = run_of(runs, "silver", DAYS[0])
    assert first["rows_in"] == (
        first["rows_out"] + first["rows_quarantined"] + first["rows_duplicate"]
    )
    quarantine = spark.read.format("delta").load(SILVER_QUARANTINE.path(lakehouse))
    expected = {
        r["reason"]: r["count"]
        for r in quarantine.where(F.col("_landing_date") == DAYS[0]).groupBy("reason").count()
        .collect()
    }  # fmt: skip
    assert expected and dict(first["quarantine_by_reason"]) == expected
    assert first["rows_quarantined"] == sum(expected.values())
    late = dict(first["late_by_days"])
    assert set(late) == {"0", "1", "2-3", "4-7", "8+"}
    assert sum(late.values()) == first["rows_out"]


def test_skew_and_freshness_are_those_of_the_published_rows(spark, lakehouse, runs):
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    bronze = run_of(runs, "bronze", DAYS[0])
    rows = (
        spark.read.format("delta")
        .load(BRONZE_PURCHASES.path(lakehouse))
        .where(F.col("_landing_date") == DAYS[0])
    )
    per_user = {r["user_id"]: r["count"] for r in rows.groupBy("user_id").count().collect()}
    sizes = {
        r["p"]: r["count"]
        for r in rows.groupBy(F.pmod(F.hash("user_id"), F.lit(partitions)).alias("p"))
        .count().collect()
    }  # fmt: skip
    assert bronze["shuffle_partitions"] == partitions
    assert bronze["partition_rows_max"] == max(sizes.values())
    assert bronze["hot_key_rows"] == max(per_user.values())
    assert per_user[bronze["hot_key"]] == bronze["hot_key_rows"]
    assert bronze["skew_ratio"] >= 1.0

    silver = run_of(runs, "silver", DAYS[0])
    newest = (
        spark.read.format("delta").load(SILVER_PURCHASES.path(lakehouse))
        .where(F.col("_landing_date") == DAYS[0]).agg(F.max("event_time")).first()[0]
    )  # fmt: skip
    day_end = dt.datetime.combine(DAYS[0] + dt.timedelta(days=1), dt.time())
    assert silver["freshness_lag_s"] == pytest.approx((day_end - newest).total_seconds())
    gold = run_of(runs, "gold_daily", DAYS[0])
    daily = spark.read.format("delta").load(GOLD_USER_DAILY.path(lakehouse))
    assert gold["freshness_lag_s"] is not None and daily.count() > 0


def test_a_rejected_gate_is_recorded_and_still_publishes_nothing(
    spark, lakehouse, tmp_path, monkeypatch
):
    root = tmp_path / "rejected"
    shutil.copytree(Path(lakehouse) / "landing", root / "landing")
    assert ingest_bronze.main(["--root", str(root), "--start", str(DAYS[0])]) == 0
    monkeypatch.setenv("LAKEHOUSE_GATE_QUARANTINE_FAIL_SHARE", "0.000001")
    monkeypatch.setenv("LAKEHOUSE_DAG_RUN_ID", "manual__2026-05-01")
    monkeypatch.setenv("LAKEHOUSE_TRY_NUMBER", "3")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_silver.main, ["--root", str(root), "--start", str(DAYS[0])])
    assert exit_info.value.code == EXIT_GATE_FAILED
    assert not (root / "silver" / "purchases").exists()
    silver = [r for r in delta_rows.read_rows(OPS_STAGE_RUNS.path(str(root)))
              if r["stage"] == "silver"]  # fmt: skip
    assert len(silver) == 1
    (run,) = silver
    assert run["status"] == "gate_failed" and run["gate_passed"] is False
    assert run["gate_failed_expectations"] >= 1
    assert run["dag_run_id"] == "manual__2026-05-01" and run["attempt"] == 3
    assert run["rows_out"] is None and run["publish_s"] is None


def test_a_metrics_table_that_cannot_be_written_does_not_fail_the_stage(
    spark, lakehouse, tmp_path, caplog
):
    root = tmp_path / "unwritable"
    shutil.copytree(Path(lakehouse) / "landing", root / "landing")
    (root / "ops").mkdir()
    (root / "ops" / "stage_runs").write_text("not a folder")  # the Delta write must fail
    assert ingest_bronze.main(["--root", str(root), "--start", str(DAYS[0])]) == 0
    assert (root / "bronze" / "purchases" / "_delta_log").is_dir()
    assert "ops.stage_runs: this run's row was not written" in caplog.text


def test_metrics_can_be_turned_off(spark, lakehouse, tmp_path, monkeypatch):
    root = tmp_path / "off"
    shutil.copytree(Path(lakehouse) / "landing", root / "landing")
    monkeypatch.setenv("LAKEHOUSE_OPS_METRICS", "off")
    assert ingest_bronze.main(["--root", str(root), "--start", str(DAYS[0])]) == 0
    assert not (root / "ops").exists()


def test_the_report_names_each_day_and_the_slowest_stages(lakehouse, capsys):
    assert report.main(["--root", lakehouse, "--days", "7"]) == 0
    text = capsys.readouterr().out
    for day in DAYS:
        for stage in STAGES:
            assert any(
                line.startswith(str(day)) and f" {stage} " in line for line in text.splitlines()
            ), (day, stage, text)
    assert "slowest stages of the last run" in text
    assert "published" in text


def test_the_report_of_an_empty_lakehouse_says_what_to_run(tmp_path, capsys):
    assert report.main(["--root", str(tmp_path), "--days", "7"]) == 0
    assert "no stage runs recorded" in capsys.readouterr().out


def test_the_report_rejects_a_bad_day_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--root", str(tmp_path), "--days", "0"])
    assert exit_info.value.code == 2


def published_run(stage: str, duration: float, **values) -> dict:
    base = {"stage": stage, "status": "published", "duration_s": duration, "rows_in": 1000,
            "rows_out": 1000, "skew_ratio": 1.1, "hot_key": "u1", "hot_key_rows": 10,
            "build_s": duration / 2, "gate_s": duration / 4, "publish_s": duration / 4,
            "end_date": DAYS[0], "error": None}  # fmt: skip
    return {**base, **values}


@pytest.mark.parametrize(
    ("run", "cause"),
    [
        (published_run("silver", 10.0), "as usual"),
        (published_run("silver", 30.0, rows_in=3000), "volume: 3.0x"),
        (published_run("silver", 30.0, skew_ratio=9.0, hot_key="u7"), "skew: user u7"),
        (published_run("silver", 30.0, build_s=5, gate_s=2.5, publish_s=22.5), "slow commit"),
        (published_run("silver", 30.0, status="failed", error="boom"), "failed: boom"),
    ],
)
def test_a_slow_run_is_put_down_to_volume_skew_or_a_slow_commit(run, cause):
    history = [published_run("silver", 10.0 + i % 2) for i in range(6)]
    assert cause in report.diagnose(run, [*history, run]).cause


def test_the_last_run_by_hand_is_the_latest_of_each_stage_over_the_newest_dates() -> None:
    def run(stage: str, day: dt.date, ended: int, dag_run_id: str | None = None) -> dict:
        at = dt.datetime(2026, 5, 3, 0, ended)
        return {"stage": stage, "start_date": day, "end_date": day, "ended_at": at,
                "dag_run_id": dag_run_id, "run_key": f"{stage}{ended}"}  # fmt: skip

    by_hand = [run("bronze", DAYS[0], 1), run("bronze", DAYS[1], 2), run("silver", DAYS[1], 3),
               run("bronze", DAYS[1], 4), run("gold_daily", DAYS[1], 5)]  # fmt: skip
    assert sorted(r["run_key"] for r in report.last_run(by_hand)) == [
        "bronze4", "gold_daily5", "silver3",
    ]  # fmt: skip
    scheduled = [*by_hand, run("bronze", DAYS[1], 6, "r1"), run("silver", DAYS[1], 7, "r1")]
    assert sorted(r["run_key"] for r in report.last_run(scheduled)) == ["bronze6", "silver7"]
