"""Build gold.user_daily: one row per (user_id, event_date) of silver purchases and refunds.

A run for landing dates [start, end] rebuilds only the event dates that silver.changes
reports for those landings, late days included. It also keeps, per landing date, what
that landing added to each (user, event_date) (gold.user_daily_by_landing): the daily
values as known at any landing date, which build_features reads.

Both tables are rebuilt from silver alone, for every landing date gold reflects (the
run's and those published before, gold.daily_landings) on the rebuilt event dates: a run
of an earlier landing date can take a record over from a later one in silver (the
earliest delivery of an event wins), so the later landing's slice must change with it.
Slices kept from earlier runs would count that record twice.

    python -m spark_jobs.jobs.build_gold --root R --start 2026-03-01 --end 2026-03-07
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    GOLD_DAILY_LANDINGS,
    GOLD_USER_DAILY,
    GOLD_USER_DAILY_BY_LANDING,
    SILVER_CHANGES,
    SILVER_PURCHASES,
    Table,
    event_dates_predicate,
    landing_filter,
    landing_predicate,
)
from spark_jobs.cli import (
    STEP_HELP,
    DateRange,
    job_parser,
    run_cli,
)
from spark_jobs.jobs import run_stage_job
from spark_jobs.quality.wap import (
    Output,
    audit_and_publish,
    changed_inputs,
    input_versions,
    read_table,
    record_inputs,
    replace_where,
    stage_outputs,
)
from spark_jobs.storage import delta
from spark_jobs.transforms.features import landing_slices, merge_slices, user_daily

STAGE = "gold_daily"
# The tables a build reads: a commit to any of them after the build makes it stale.
INPUTS = (SILVER_PURCHASES, SILVER_CHANGES, GOLD_DAILY_LANDINGS)

log = logging.getLogger(__name__)


def changed_event_dates(changes: DataFrame, days: DateRange) -> DataFrame:
    """Distinct event dates touched by the landings of ``days``, per silver.changes."""
    return changes.where(landing_filter(days)).select("event_date").distinct()


def gold_daily_frames(
    silver: DataFrame, landings: DataFrame, event_dates: list[dt.date]
) -> dict[Table, DataFrame]:
    """The slices and the user_daily rows of ``event_dates``, from silver alone.

    ``landings`` (one ``_landing_date`` column) are the landing dates gold reflects: the
    run's and every one gold published before. Each one's slice of those days is
    recomputed, not only the run's: silver may have moved a record between landing
    dates since the slice was published.
    """
    rows = silver.where(F.col("event_date").isin(event_dates)).join(
        F.broadcast(landings), "_landing_date", "left_semi"
    )
    slices = landing_slices(rows)
    return {
        GOLD_USER_DAILY_BY_LANDING: slices,
        GOLD_USER_DAILY: user_daily(merge_slices(slices)),
    }


def run_landings(spark: SparkSession, days: DateRange) -> DataFrame:
    """The run's landing dates, one ``_landing_date`` row each."""
    return spark.createDataFrame([(day,) for day in days.days()], GOLD_DAILY_LANDINGS.schema)


def reflected_landings(spark: SparkSession, root: str, days: DateRange) -> DataFrame:
    """The run's landing dates and every landing date gold published before."""
    published = delta.read_if_exists(spark, GOLD_DAILY_LANDINGS.path(root))
    if published is None:
        return run_landings(spark, days)
    return published.unionByName(run_landings(spark, days)).distinct()


def gold_outputs(days: DateRange, event_dates: list[dt.date]) -> list[Output]:
    """How the stage publishes: slices and user_daily by rebuilt event date, then the dates."""
    rebuilt = event_dates_predicate(event_dates)
    landings = landing_predicate(days)
    return [
        Output(
            GOLD_USER_DAILY_BY_LANDING,
            replace_where(rebuilt, GOLD_USER_DAILY_BY_LANDING),
            gated=False,
        ),
        Output(GOLD_USER_DAILY, replace_where(rebuilt, GOLD_USER_DAILY)),
        # Last: a landing date counts as reflected only once its rows are published.
        Output(GOLD_DAILY_LANDINGS, replace_where(landings, GOLD_DAILY_LANDINGS), gated=False),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build (stage) and/or gate and publish gold.user_daily for a range of landing dates."""
    parser = job_parser(
        "build_gold",
        "Rebuild gold.user_daily for the event dates that the landings in "
        "[--start, --end] touched (per silver.changes).",
        steps=STEP_HELP,
    )
    args = parser.parse_args(argv)
    return run_stage_job(
        "build_gold", STAGE, args, lambda spark, root, days: _steps(spark, root, days, args.step)
    )


def _steps(spark: SparkSession, root: str, days: DateRange, step: str) -> None:
    run_steps(spark, root, days, step)


def rebuilt_event_dates(spark: SparkSession, root: str, days: DateRange) -> list[dt.date]:
    """The event dates a run of ``days`` rebuilds, sorted: what silver.changes names."""
    changes = read_table(spark, root, SILVER_CHANGES, "build_silver")
    return sorted(row["event_date"] for row in changed_event_dates(changes, days).collect())


def build(spark: SparkSession, root: str, days: DateRange) -> list[dt.date]:
    """Stage the rebuilt event dates of ``days``; returns those dates."""
    versions = input_versions(spark, root, INPUTS)
    event_dates = rebuilt_event_dates(spark, root, days)
    silver = read_table(spark, root, SILVER_PURCHASES, "build_silver")
    frames = gold_daily_frames(silver, reflected_landings(spark, root, days), event_dates)
    stage_outputs(spark, root, days.key, {**frames, GOLD_DAILY_LANDINGS: run_landings(spark, days)})
    record_inputs(spark, root, days.key, GOLD_USER_DAILY, versions)
    return event_dates


def run_steps(spark: SparkSession, root: str, days: DateRange, step: str) -> list[dt.date]:
    """The build and/or publish step of a run; returns the event dates it rebuilt."""
    if step in ("all", "build"):
        event_dates = build(spark, root, days)
    elif changed := changed_inputs(spark, root, days.key, GOLD_USER_DAILY, INPUTS):
        log.warning("inputs changed since the build step (%s): building again", changed)
        event_dates = build(spark, root, days)
    else:
        event_dates = rebuilt_event_dates(spark, root, days)
    if step in ("all", "publish"):
        audit_and_publish(
            spark,
            root,
            STAGE,
            days.key,
            gold_outputs(days, event_dates),
            {
                "start": str(days.start),
                "end": str(days.end),
                # The row-count band scales with the event days rebuilt, which the
                # stage already knows: the gate need not count them again.
                "staged_days": len(event_dates),
            },
        )
    return event_dates


if __name__ == "__main__":
    run_cli(main)
