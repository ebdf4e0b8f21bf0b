"""Weekly maintenance keeps every Delta version a training-set manifest still needs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from spark_jobs.jobs import maintenance

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def manifest(inputs: dict[str, int], output: tuple[str, int] | None = None) -> dict:
    """A manifest as build_training_set writes it, reduced to the versions."""
    return {
        "inputs": {
            name: {"path": f"/lake/{name}", "delta_version": version}
            for name, version in inputs.items()
        },
        "output": None if output is None else {"path": output[0], "delta_version": output[1]},
        "spine": {"path": "/spines/s.csv", "format": "csv", "delta_version": None},
    }


def test_the_oldest_version_any_manifest_needs_is_protected_per_table() -> None:
    found = [
        manifest({"gold.user_features": 7, "gold.user_features_history": 3}, ("/lake/t1", 0)),
        manifest({"gold.user_features": 4}, ("/lake/t2", 2)),
    ]
    assert maintenance.protected_versions(found) == {
        "/lake/gold.user_features": 4,
        "/lake/gold.user_features_history": 3,
        "/lake/t1": 0,
        "/lake/t2": 2,
    }


def test_unprotected_table_keeps_the_default_retention() -> None:
    plan = maintenance.plan_table("/lake/t", None, None, NOW, 168)
    assert (plan.retention_hours, plan.protected_version, plan.log_retention_days) == (
        168,
        None,
        None,
    )


def test_retention_stretches_to_cover_a_protected_version_older_than_a_week() -> None:
    committed = NOW - dt.timedelta(days=10, hours=5, minutes=30)
    plan = maintenance.plan_table("/lake/t", 3, committed, NOW, 168)
    assert plan.retention_hours == 10 * 24 + 6 + 1
    assert plan.protected_version == 3
    assert plan.log_retention_days is None  # Delta's 30 days of log still cover two weeks more


def test_log_retention_grows_before_a_protected_version_would_leave_the_log() -> None:
    committed = NOW - dt.timedelta(days=20, hours=1)
    plan = maintenance.plan_table("/lake/t", 0, committed, NOW, 168)
    assert plan.retention_hours == 20 * 24 + 1 + 1
    assert plan.log_retention_days == 21 + 14


def test_a_recent_protected_version_never_shortens_the_default() -> None:
    plan = maintenance.plan_table("/lake/t", 9, NOW - dt.timedelta(hours=2), NOW, 200)
    assert plan.retention_hours == 200


def test_retention_below_a_week_is_refused_with_exit_2(lakehouse, capsys) -> None:
    from spark_jobs.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(maintenance.main, ["--root", lakehouse, "--retention-hours", "24"])
    assert exit_info.value.code == 2
    assert "below 168" in capsys.readouterr().err


@pytest.mark.slow
def test_maintenance_compacts_vacuums_and_keeps_a_manifests_version_readable(
    spark, lakehouse
) -> None:
    from spark_jobs.catalog import GOLD_USER_DAILY

    path = GOLD_USER_DAILY.path(lakehouse)
    schema = "user_id string, n long"
    for batch in range(3):
        rows = [(f"u{batch}-{i}", i) for i in range(5)]
        spark.createDataFrame(rows, schema).repartition(3).write.format("delta").mode(
            "overwrite"
        ).save(path)
    recorded = Path(lakehouse, "training", "t1", "_manifest.json")
    recorded.parent.mkdir(parents=True)
    recorded.write_text(
        json.dumps(
            {
                "format_version": 1,
                "inputs": {"gold.user_daily": {"path": path, "delta_version": 1}},
                "output": None,
                "spine": {},
            }
        )
    )

    assert maintenance.main(["--root", lakehouse]) == 0

    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()
    assert {row["operation"] for row in history} >= {"OPTIMIZE", "VACUUM START", "VACUUM END"}
    version_1 = spark.read.format("delta").option("versionAsOf", 1).load(path)
    assert sorted(r["user_id"] for r in version_1.collect()) == [f"u1-{i}" for i in range(5)]
    current = spark.read.format("delta").load(path)
    assert current.inputFiles() and len(current.inputFiles()) == 1


def test_an_unreadable_manifest_is_reported_and_its_tables_keep_every_version(
    spark, lakehouse, capsys
) -> None:
    from spark_jobs.catalog import GOLD_USER_FEATURES

    path = GOLD_USER_FEATURES.path(lakehouse)
    spark.createDataFrame([("u1", 1)], "user_id string, n long").write.format("delta").save(path)
    cut_short = Path(lakehouse, "training", "t1", "_manifest.json")
    cut_short.parent.mkdir(parents=True)
    cut_short.write_text('{"format_version": 1, "inputs": {"gold.user_fea')

    assert maintenance.main(["--root", lakehouse, "--dry-run"]) == 0

    plan = capsys.readouterr().out
    assert f"plan: {path}: retention" in plan and "keeps v0" in plan


def test_staging_of_runs_that_died_goes_and_recent_staging_stays(spark, lakehouse) -> None:
    import os

    staging = Path(lakehouse, "_staging", "gold", "user_daily")
    dead, recent = staging / "2026-03-01_2026-03-01__run-dead", staging / "2026-03-02_2026-03-02"
    for run in (dead, recent):
        (run / "_delta_log").mkdir(parents=True)
        (run / "part-0.parquet").write_bytes(b"")
    three_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).timestamp()
    for entry in (dead / "_delta_log", dead / "part-0.parquet", dead):
        os.utime(entry, (three_days_ago, three_days_ago))

    assert maintenance.main(["--root", lakehouse, "--skip-optimize"]) == 0

    assert not dead.exists()
    assert recent.exists()
