"""Build gold.user_features (latest versions) and gold.user_features_history (all versions).

The run for landing date L writes the snapshot as_of_date = L of every user with history
and, for users with late rows landed on L, new versions of every earlier snapshot whose
windows (lifetime included) contain a changed day. Each version is stamped
``available_at`` = L + 1 day, 00:00 UTC, and is computed only from rows landed on or
before L, so a backfill over [start, end] gives row for row what daily runs give.

Each day starts from the previous day's per-user state (gold.user_feature_state) and
the last 90 days of daily slices (gold.user_daily_by_landing, from build_gold): its cost
does not grow with history. A range runs day after day in one Spark session.

    python -m spark_jobs.build_features --root R --start 2026-03-01 --end 2026-03-31
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime as dt
import functools
import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.build_gold import read_table
from spark_jobs.cli import DateRange, date_range, job_parser, resolve_root, run_cli
from spark_jobs.features import (
    LONGEST_WINDOW,
    feature_rows,
    latest_versions,
    lifetime_state,
    merge_slices,
    snapshot_starts,
    state_rows,
    versions_of,
    window_features,
)
from spark_jobs.session import build_spark
from spark_jobs.tables import (
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_FEATURE_STATE,
    GOLD_USER_FEATURE_STATE_SCHEMA,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    Table,
    join_path,
    staging_path,
)
from spark_jobs.wap import (
    STEPS,
    Output,
    Publisher,
    audit_and_publish,
    replace_where,
    stage_outputs,
)

log = logging.getLogger(__name__)

STAGE = "features"
ONE_DAY = dt.timedelta(days=1)


def available_at(landing_date: dt.date) -> dt.datetime:
    """When the run of ``landing_date`` makes its versions known: the end of its interval."""
    return dt.datetime.combine(landing_date + ONE_DAY, dt.time())


def timestamp_sql(moment: dt.datetime) -> str:
    """A SQL timestamp literal (UTC, the session time zone)."""
    return f"TIMESTAMP'{moment:%Y-%m-%d %H:%M:%S}'"


def first_touched_dates(slices: DataFrame, days: DateRange) -> dict[dt.date, dt.date]:
    """Per landing date of the range: the earliest event date its rows touch."""
    rows = (
        slices.where(F.col("_landing_date").between(F.lit(days.start), F.lit(days.end)))
        .groupBy("_landing_date")
        .agg(F.min("event_date").alias("first_event_date"))
        .collect()
    )
    return {row["_landing_date"]: row["first_event_date"] for row in rows}


def compute_versions(spark: SparkSession, root: str, days: DateRange) -> list[DataFrame]:
    """The wide version frames (see ``features.versions_of``) of each landing date.

    Days run in order in this session; each day's versions are written to a scratch
    folder beside the staged outputs and read back as the next day's previous state, so
    a range costs one job start, not one per day. (Reading files back, unlike an
    in-memory checkpoint, also gives the planner real sizes: estimates carried over
    from one day's joins to the next multiply without bound.) Published state is read
    only as it was before the range (versions available by ``days.start`` 00:00), which
    makes a rerun see what the first run saw.
    """
    slices_all = read_table(spark, root, GOLD_USER_DAILY_BY_LANDING, "build_gold")
    touched = first_touched_dates(slices_all, days)
    starts = {day: min(touched.get(day, day), day) for day in days.days()}
    earliest = min(starts.values())
    daily_from = earliest - dt.timedelta(days=LONGEST_WINDOW - 1)
    slices = slices_all.where(
        F.col("_landing_date").between(F.lit(daily_from), F.lit(days.end))
        & (F.col("event_date") >= F.lit(daily_from))
    )
    if len(days) > 1:
        slices = slices.cache()
    state_path = GOLD_USER_FEATURE_STATE.path(root)
    published_state = (
        spark.read.format("delta")
        .load(state_path)
        .where(F.col("available_at") <= F.expr(timestamp_sql(available_at(days.start - ONE_DAY))))
        if DeltaTable.isDeltaTable(spark, state_path)
        else None
    )
    scratch = staging_path(root, GOLD_USER_FEATURE_STATE, f"{days.key}_versions")
    produced: list[tuple[dt.date, DataFrame]] = []
    for landing_date in days.days():
        start = starts[landing_date]
        base_from = start - ONE_DAY
        sources = [
            state_rows(versions).where(F.col("as_of_date") >= F.lit(base_from))
            for produced_on, versions in produced
            if produced_on >= base_from
        ]
        if published_state is not None and base_from < days.start:
            sources.append(
                published_state.where(
                    F.col("as_of_date").between(F.lit(base_from), F.lit(days.start - ONE_DAY))
                )
            )
        base = latest_versions(
            functools.reduce(DataFrame.unionByName, sources)
            if sources
            else spark.createDataFrame([], GOLD_USER_FEATURE_STATE_SCHEMA)
        ).localCheckpoint()
        previous = base.where(F.col("as_of_date") == F.lit(landing_date - ONE_DAY))
        landed = slices.where(F.col("_landing_date") == F.lit(landing_date)).select(
            "user_id", "event_date"
        )
        known = slices.where(
            (F.col("_landing_date") <= F.lit(landing_date))
            & (F.col("event_date") >= F.lit(start - dt.timedelta(days=LONGEST_WINDOW - 1)))
        )
        # Checkpoints between the steps keep each query plan small: planning one plan
        # with every step inlined costs more than the extra in-memory materialisations.
        daily = merge_slices(known).localCheckpoint()
        starts_of_users = snapshot_starts(previous, landed, landing_date)
        state = lifetime_state(starts_of_users, base, daily, landing_date).localCheckpoint()
        day_path = join_path(scratch, f"landing_date={landing_date}")
        versions_of(state, window_features(state, daily)).write.mode("overwrite").parquet(day_path)
        produced.append((landing_date, spark.read.parquet(day_path)))
        log.info("features for landing date %s: snapshots from %s", landing_date, start)
    if len(days) > 1:
        slices.unpersist()
    return [versions for _, versions in produced]


def feature_frames(versions: list[DataFrame]) -> dict[Table, DataFrame]:
    """The staged outputs: every version (history), the newest per key, and the state."""
    every = functools.reduce(DataFrame.unionByName, versions)
    history = feature_rows(every)
    return {
        GOLD_USER_FEATURES_HISTORY: history,
        GOLD_USER_FEATURES: latest_versions(history),
        GOLD_USER_FEATURE_STATE: state_rows(every),
    }


def merge_newer_versions(table: Table) -> Publisher:
    """A publisher that keeps, per (user_id, as_of_date), the version with the latest available_at.

    Rerunning an old landing date never replaces a newer correction; rerunning the same
    date rewrites identical rows. The first publish creates the table.
    """

    def publish(spark: SparkSession, staged: DataFrame, path: str) -> None:
        rows = staged.select([f.name for f in table.schema.fields])
        if not DeltaTable.isDeltaTable(spark, path):
            rows.write.format("delta").partitionBy(*table.partition_by).save(path)
            return
        bounds = rows.agg(F.min("as_of_date"), F.max("as_of_date")).first()
        if bounds is None or bounds[0] is None:
            return
        on = (
            f"t.as_of_date >= DATE'{bounds[0]}' AND t.as_of_date <= DATE'{bounds[1]}' "
            "AND t.user_id = s.user_id AND t.as_of_date = s.as_of_date"
        )
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(rows.alias("s"), on)
            .whenMatchedUpdateAll(condition="s.available_at >= t.available_at")
            .whenNotMatchedInsertAll()
            .execute()
        )

    return publish


def feature_outputs(days: DateRange) -> list[Output]:
    """How the stage publishes: versions of the range by available_at, latest by MERGE."""
    versions_of_range = (
        f"available_at >= {timestamp_sql(available_at(days.start))} "
        f"AND available_at <= {timestamp_sql(available_at(days.end))}"
    )
    return [
        Output(GOLD_USER_FEATURES, merge_newer_versions(GOLD_USER_FEATURES)),
        Output(
            GOLD_USER_FEATURES_HISTORY,
            replace_where(versions_of_range, GOLD_USER_FEATURES_HISTORY),
            gated=False,
        ),
        Output(
            GOLD_USER_FEATURE_STATE,
            replace_where(versions_of_range, GOLD_USER_FEATURE_STATE),
            gated=False,
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build (stage) and/or gate and publish the feature snapshots of a range of landing dates."""
    parser = job_parser(
        "build_features",
        "Write the user feature snapshots of the landing dates [--start, --end], and "
        "corrected versions of earlier snapshots that late rows changed.",
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
    spark = build_spark(app_name="build_features")
    if args.step in ("all", "build"):
        stage_outputs(spark, root, days.key, feature_frames(compute_versions(spark, root, days)))
    if args.step in ("all", "publish"):
        audit_and_publish(
            spark,
            root,
            STAGE,
            days.key,
            feature_outputs(days),
            {"start": str(days.start), "end": str(days.end), "stage": STAGE},
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
