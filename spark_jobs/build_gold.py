"""Build gold.user_daily: one row per (user_id, event_date) of silver purchases and refunds.

A run for landing dates [start, end] rebuilds only the event dates that silver.changes
reports for those landings, late days included. It also keeps, per landing date, what
that landing added to each (user, event_date) (gold.user_daily_by_landing): the daily
values as known at any landing date, which build_features reads.

    python -m spark_jobs.build_gold --root R --start 2026-03-01 --end 2026-03-07
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime as dt

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.cli import (
    DateRange,
    UserError,
    date_range,
    job_parser,
    resolve_root,
    run_cli,
)
from spark_jobs.features import landing_slices, merge_slices, user_daily
from spark_jobs.session import build_spark
from spark_jobs.tables import (
    GOLD_USER_DAILY,
    GOLD_USER_DAILY_BY_LANDING,
    SILVER_CHANGES,
    SILVER_PURCHASES,
    Table,
)
from spark_jobs.wap import STEPS, Output, audit_and_publish, replace_where, stage_outputs

STAGE = "gold_daily"


def read_table(spark: SparkSession, root: str, table: Table, produced_by: str) -> DataFrame:
    """A published table, or a clear error naming the job that produces it."""
    path = table.path(root)
    if not DeltaTable.isDeltaTable(spark, path):
        raise UserError(
            f"{table.name} not found at {path}: run {produced_by} for these dates first"
        )
    return spark.read.format("delta").load(path)


def landing_filter(days: DateRange) -> Column:
    """Rows landed in the run's range of landing dates."""
    return F.col("_landing_date").between(F.lit(days.start), F.lit(days.end))


def changed_event_dates(changes: DataFrame, days: DateRange) -> DataFrame:
    """Distinct event dates touched by the landings of ``days``, per silver.changes."""
    return changes.where(landing_filter(days)).select("event_date").distinct()


def gold_daily_frames(
    silver: DataFrame,
    published_slices: DataFrame | None,
    event_dates: list[dt.date],
    days: DateRange,
) -> dict[Table, DataFrame]:
    """The slices of the run's landings and the rebuilt user_daily rows of ``event_dates``.

    A day's row merges every slice of that day: this run's landings and, from the
    published slices, the landings outside the run (earlier ones, and later ones when an
    old day is rerun), so a rerun leaves the table as it was.
    """
    on_changed_days = F.col("event_date").isin(event_dates)
    slices = landing_slices(silver.where(on_changed_days & landing_filter(days)))
    all_slices = slices
    if published_slices is not None:
        others = published_slices.where(on_changed_days & ~landing_filter(days))
        all_slices = slices.unionByName(others)
    return {
        GOLD_USER_DAILY_BY_LANDING: slices,
        GOLD_USER_DAILY: user_daily(merge_slices(all_slices)),
    }


def event_dates_predicate(event_dates: list[dt.date]) -> str:
    """A replaceWhere predicate for the rebuilt event dates (``false``: nothing to replace)."""
    if not event_dates:
        return "false"
    return "event_date IN ({})".format(", ".join(f"DATE'{d}'" for d in sorted(event_dates)))


def gold_outputs(days: DateRange, event_dates: list[dt.date]) -> list[Output]:
    """How the stage publishes: slices by landing date, user_daily by rebuilt event date."""
    landings = f"_landing_date >= DATE'{days.start}' AND _landing_date <= DATE'{days.end}'"
    return [
        Output(
            GOLD_USER_DAILY_BY_LANDING,
            replace_where(landings, GOLD_USER_DAILY_BY_LANDING),
            gated=False,
        ),
        Output(GOLD_USER_DAILY, replace_where(event_dates_predicate(event_dates), GOLD_USER_DAILY)),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build (stage) and/or gate and publish gold.user_daily for a range of landing dates."""
    parser = job_parser(
        "build_gold",
        "Rebuild gold.user_daily for the event dates that the landings in "
        "[--start, --end] touched (per silver.changes).",
    )
    parser.add_argument(
        "--step",
        choices=STEPS,
        default="all",
        help="build: compute and stage; publish: gate and commit staged rows; all: both",
    )
    args = parser.parse_args(argv)
    days = date_range(args)
    root = resolve_root(args.root)
    spark = build_spark(app_name="build_gold")
    changes = read_table(spark, root, SILVER_CHANGES, "build_silver")
    event_dates = sorted(row["event_date"] for row in changed_event_dates(changes, days).collect())
    if args.step in ("all", "build"):
        silver = read_table(spark, root, SILVER_PURCHASES, "build_silver")
        slices_path = GOLD_USER_DAILY_BY_LANDING.path(root)
        published_slices = (
            spark.read.format("delta").load(slices_path)
            if DeltaTable.isDeltaTable(spark, slices_path)
            else None
        )
        frames = gold_daily_frames(silver, published_slices, event_dates, days)
        stage_outputs(spark, root, days.key, frames)
    if args.step in ("all", "publish"):
        audit_and_publish(
            spark,
            root,
            STAGE,
            days.key,
            gold_outputs(days, event_dates),
            {
                "start": str(days.start),
                "end": str(days.end),
                "stage": STAGE,
                # The row-count band scales with the event days rebuilt, which the
                # stage already knows: the gate need not count them again.
                "staged_days": len(event_dates),
            },
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
