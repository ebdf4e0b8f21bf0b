"""Write-audit-publish: staged rows reach the real tables only through a passing gate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from spark_jobs.catalog import GOLD_USER_DAILY, SILVER_CHANGES, Table, staging_path
from spark_jobs.cli import GateFailed, UserError
from spark_jobs.quality.wap import (
    Output,
    audit_and_publish,
    latest_version,
    read_staged,
    replace_where,
    stage_outputs,
)

DAY = dt.date(2026, 3, 2)
RUN = f"{DAY}_{DAY}"


def user_day(user: str, day: dt.date = DAY, items: int = 2) -> tuple:
    start = dt.datetime(day.year, day.month, day.day, 9, tzinfo=dt.UTC)
    amount = Decimal("22.0000")
    return (user, day, 1, items, amount, Decimal(0), amount, 0, 1, start, start)


def gold(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, GOLD_USER_DAILY.schema)


def changes(spark: SparkSession, day: dt.date = DAY) -> DataFrame:
    return spark.createDataFrame([(day, day, "u1", 1)], SILVER_CHANGES.schema)


def sorted_rows(spark: SparkSession, table: Table, root: str, *columns: str) -> list[tuple]:
    published = spark.read.format("delta").load(table.path(root))
    return sorted(tuple(r) for r in published.select(*(columns or published.columns)).collect())


def day_output(day: dt.date = DAY) -> Output:
    return Output(GOLD_USER_DAILY, replace_where(f"event_date = DATE'{day}'", GOLD_USER_DAILY))


def params(day: dt.date = DAY) -> dict[str, object]:
    return {"start": str(day), "end": str(day)}


def test_publish_before_build_is_one_clear_error(spark: SparkSession, lakehouse: str) -> None:
    with pytest.raises(UserError, match=r"no staged output for gold.user_daily .*--step build"):
        read_staged(spark, lakehouse, GOLD_USER_DAILY, RUN)


def test_staging_again_replaces_what_a_previous_try_left(
    spark: SparkSession, lakehouse: str
) -> None:
    stage_outputs(spark, lakehouse, RUN, {GOLD_USER_DAILY: gold(spark, [user_day("u1")])})
    stage_outputs(spark, lakehouse, RUN, {GOLD_USER_DAILY: gold(spark, [user_day("u2")])})
    staged = read_staged(spark, lakehouse, GOLD_USER_DAILY, RUN).collect()
    assert [r.user_id for r in staged] == ["u2"]
    assert staging_path(lakehouse, GOLD_USER_DAILY, RUN).endswith(f"_staging/gold/user_daily/{RUN}")


def test_rerun_of_a_day_replaces_that_day_only(spark: SparkSession, lakehouse: str) -> None:
    next_day = DAY + dt.timedelta(days=1)
    for day, users in ((DAY, ["u1", "u2"]), (next_day, ["u3"]), (DAY, ["u4"])):
        run = f"{day}_{day}"
        rows = gold(spark, [user_day(u, day) for u in users])
        stage_outputs(spark, lakehouse, run, {GOLD_USER_DAILY: rows})
        audit_and_publish(spark, lakehouse, "gold", run, [day_output(day)], params(day))

    assert sorted_rows(spark, GOLD_USER_DAILY, lakehouse, "user_id", "event_date") == [
        ("u3", next_day),
        ("u4", DAY),
    ]
    assert latest_version(spark, GOLD_USER_DAILY.path(lakehouse)) == 2


def test_one_failing_gate_publishes_none_of_the_stage_outputs(
    spark: SparkSession, lakehouse: str
) -> None:
    changes_output = Output(SILVER_CHANGES, replace_where("true", SILVER_CHANGES), gated=False)
    stage_outputs(
        spark,
        lakehouse,
        RUN,
        {SILVER_CHANGES: changes(spark), GOLD_USER_DAILY: gold(spark, [user_day("u1", items=-1)])},
    )

    with pytest.raises(GateFailed, match=r"stage gold \(2026-03-02_2026-03-02\) published nothing"):
        audit_and_publish(spark, lakehouse, "gold", RUN, [changes_output, day_output()], params())

    assert latest_version(spark, SILVER_CHANGES.path(lakehouse)) == -1
    assert latest_version(spark, GOLD_USER_DAILY.path(lakehouse)) == -1


def test_ungated_outputs_publish_alongside_gated_ones(spark: SparkSession, lakehouse: str) -> None:
    changes_output = Output(SILVER_CHANGES, replace_where("true", SILVER_CHANGES), gated=False)
    stage_outputs(
        spark,
        lakehouse,
        RUN,
        {SILVER_CHANGES: changes(spark), GOLD_USER_DAILY: gold(spark, [user_day("u1")])},
    )

    result = audit_and_publish(
        spark, lakehouse, "gold", RUN, [changes_output, day_output()], params()
    )

    assert result.published
    assert set(result.gate_results) == {"gold.user_daily"}
    assert result.versions == {"silver.changes": 0, "gold.user_daily": 0}
    assert result.row_counts == {"silver.changes": 1, "gold.user_daily": 1}
    assert sorted_rows(spark, SILVER_CHANGES, lakehouse) == [(DAY, DAY, "u1", 1)]


def test_a_published_run_leaves_no_staging_behind(spark: SparkSession, lakehouse: str) -> None:
    stage_outputs(spark, lakehouse, RUN, {GOLD_USER_DAILY: gold(spark, [user_day("u1")])})

    audit_and_publish(spark, lakehouse, "gold", RUN, [day_output()], params())

    assert not Path(staging_path(lakehouse, GOLD_USER_DAILY, RUN)).exists()


def test_a_failed_gate_keeps_the_staged_rows_for_a_look(
    spark: SparkSession, lakehouse: str
) -> None:
    stage_outputs(spark, lakehouse, RUN, {GOLD_USER_DAILY: gold(spark, [user_day("u1", items=-1)])})

    with pytest.raises(GateFailed):
        audit_and_publish(spark, lakehouse, "gold", RUN, [day_output()], params())

    assert Path(staging_path(lakehouse, GOLD_USER_DAILY, RUN)).exists()
