"""Build gold.user_features (latest versions) and gold.user_features_history (all versions).

The run for landing date L writes the snapshot as_of_date = L of every user with history
and, for users with late rows landed on L, new versions of every earlier snapshot whose
windows (lifetime included) contain a changed day. Each version is stamped
``available_at`` = L + 1 day, 00:00 UTC, and is computed only from rows landed on or
before L, so a backfill over [start, end] gives row for row what daily runs give.

Each day starts from the previous day's per-user state (gold.user_feature_state) and
the last 90 days of daily slices (gold.user_daily_by_landing, from build_gold): its cost
does not grow with history. A range runs day after day in one Spark session.

Landing dates may be processed in any order. Every later landing date already published
(gold.feature_landings) built its versions on the state of the days before it, so a run
of an earlier date recomputes the range from its start through the newest published
landing date, and the tables end as one in-order pass would leave them. A run never
builds on a hole: it starts right after the newest published date before its range,
computing any date in between as one that landed nothing (until that date runs itself).

    python -m spark_jobs.jobs.build_features --root R --start 2026-03-01 --end 2026-03-31
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    GOLD_FEATURE_LANDINGS,
    GOLD_FEATURE_LANDINGS_SCHEMA,
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_FEATURE_STATE,
    GOLD_USER_FEATURE_STATE_SCHEMA,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    Table,
    join_path,
    staging_path,
)
from spark_jobs.cli import DateRange, date_range, job_parser, resolve_root, run_cli
from spark_jobs.quality.wap import (
    STEPS,
    Output,
    Publisher,
    audit_and_publish,
    changed_inputs,
    input_versions,
    read_staged,
    read_table,
    record_inputs,
    replace_where,
    stage_outputs,
)
from spark_jobs.session import build_spark
from spark_jobs.storage import files as storage
from spark_jobs.storage.locking import writer_lock
from spark_jobs.transforms.features import (
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

log = logging.getLogger(__name__)

STAGE = "features"
# The tables a build reads: a commit to any of them after the build makes it stale.
INPUTS = (GOLD_USER_DAILY_BY_LANDING, GOLD_USER_FEATURE_STATE, GOLD_FEATURE_LANDINGS)
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


def scratch_path(root: str, run_key: str) -> str:
    """Where a build hands each day's versions to the next: removed once staged."""
    return staging_path(root, GOLD_USER_FEATURE_STATE, f"{run_key}_versions")


def compute_versions(
    spark: SparkSession, root: str, days: DateRange, scratch: str
) -> list[DataFrame]:
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


def feature_frames(
    spark: SparkSession, versions: list[DataFrame], days: DateRange
) -> dict[Table, DataFrame]:
    """The staged outputs: every version (history), the newest per key, the state, the dates."""
    every = functools.reduce(DataFrame.unionByName, versions)
    history = feature_rows(every)
    return {
        GOLD_USER_FEATURES_HISTORY: history,
        GOLD_USER_FEATURES: latest_versions(history),
        GOLD_USER_FEATURE_STATE: state_rows(every),
        GOLD_FEATURE_LANDINGS: spark.createDataFrame(
            [(day,) for day in days.days()], GOLD_FEATURE_LANDINGS_SCHEMA
        ),
    }


def published_landings(spark: SparkSession, root: str) -> list[dt.date]:
    """The landing dates whose features are published, in order (none before the first)."""
    path = GOLD_FEATURE_LANDINGS.path(root)
    if not DeltaTable.isDeltaTable(spark, path):
        return []
    rows = spark.read.format("delta").load(path).select("_landing_date").distinct().collect()
    return sorted(row["_landing_date"] for row in rows)


def cascade_range(spark: SparkSession, root: str, days: DateRange) -> DateRange:
    """The landing dates a run of ``days`` computes: a gap-free stretch of published ones.

    Each landing date's versions build on the state of the day before it. So a run also
    recomputes every later published landing date (the same versions when nothing
    changed, each still stamped with its own landing date's ``available_at``), and it
    starts right after the newest published date before ``days``: a date in between that
    has not run yet is computed as a day that landed nothing, and is recomputed the same
    way once it runs.
    """
    published = published_landings(spark, root)
    earlier = [day for day in published if day < days.start]
    start = earlier[-1] + ONE_DAY if earlier else days.start
    end = max([days.end, *published])
    if start < days.start:
        log.warning(
            "landing dates %s..%s have no published features and %s..%s build on them: "
            "computing them as days that landed nothing (a run of them recomputes them)",
            start,
            days.start - ONE_DAY,
            days.start,
            days.end,
        )
    if end > days.end:
        log.warning(
            "landing dates %s..%s are published and build on %s..%s: recomputing them too",
            days.end + ONE_DAY,
            end,
            days.start,
            days.end,
        )
    return DateRange(start, end)


def staged_range(spark: SparkSession, root: str, run_key: str) -> DateRange:
    """The landing dates the build step computed, from its staged gold.feature_landings."""
    bounds = (
        read_staged(spark, root, GOLD_FEATURE_LANDINGS, run_key)
        .agg(F.min("_landing_date"), F.max("_landing_date"))
        .first()
    )
    return DateRange(bounds[0], bounds[1])


def newest_versions(root: str, range_start: dt.date) -> Publisher:
    """A publisher that makes gold.user_features the newest version of every snapshot.

    The staged rows are the newest versions the range produced. A published row that an
    earlier run of the range produced (``available_at`` inside it) and the rerun no
    longer does falls back to its newest version from before the range (from the
    history), or goes when there is none. Rows older than the range stay as they are.
    """
    table = GOLD_USER_FEATURES
    first_of_range = timestamp_sql(available_at(range_start))

    def publish(spark: SparkSession, staged: DataFrame, path: str) -> None:
        columns = [f.name for f in table.schema.fields]
        rows = staged.select(columns)
        if not DeltaTable.isDeltaTable(spark, path):
            rows.write.format("delta").partitionBy(*table.partition_by).save(path)
            return
        target = DeltaTable.forPath(spark, path)
        history_path = GOLD_USER_FEATURES_HISTORY.path(root)
        source = rows
        if DeltaTable.isDeltaTable(spark, history_path):
            owned = (
                target.toDF()
                .where(f"available_at >= {first_of_range}")
                .select("user_id", "as_of_date")
            )
            fallback = (
                spark.read.format("delta")
                .load(history_path)
                .where(f"available_at < {first_of_range}")
                .join(owned, ["user_id", "as_of_date"], "left_semi")
                .select(columns)
            )
            source = latest_versions(rows.unionByName(fallback))
        (
            target.alias("t")
            .merge(source.alias("s"), "t.user_id = s.user_id AND t.as_of_date = s.as_of_date")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete(condition=f"t.available_at >= {first_of_range}")
            .execute()
        )

    return publish


def feature_outputs(root: str, days: DateRange) -> list[Output]:
    """How the stage publishes: versions of the range by available_at, latest by MERGE."""
    versions_of_range = (
        f"available_at >= {timestamp_sql(available_at(days.start))} "
        f"AND available_at <= {timestamp_sql(available_at(days.end))}"
    )
    landings = f"_landing_date >= DATE'{days.start}' AND _landing_date <= DATE'{days.end}'"
    return [
        Output(GOLD_USER_FEATURES, newest_versions(root, days.start)),
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
        # Last: a landing date counts as published only once its versions are.
        Output(GOLD_FEATURE_LANDINGS, replace_where(landings, GOLD_FEATURE_LANDINGS), gated=False),
    ]


def build(spark: SparkSession, root: str, days: DateRange) -> DateRange:
    """Stage the versions of ``days`` and of every later published landing date."""
    versions = input_versions(spark, root, INPUTS)
    computed = cascade_range(spark, root, days)
    scratch = scratch_path(root, days.key)
    frames = feature_frames(spark, compute_versions(spark, root, computed, scratch), computed)
    stage_outputs(spark, root, days.key, frames)
    record_inputs(spark, root, days.key, GOLD_FEATURE_LANDINGS, versions)
    storage.delete_tree(spark, scratch)
    return computed


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
    with writer_lock(root, f"build_features {days.key}"):
        run_steps(spark, root, days, args.step)
    return 0


def run_steps(spark: SparkSession, root: str, days: DateRange, step: str) -> None:
    """The build and/or publish step of a run (building again when its inputs moved on)."""
    if step in ("all", "build"):
        build(spark, root, days)
    if step in ("all", "publish"):
        computed = staged_range(spark, root, days.key)
        if changed := changed_inputs(spark, root, days.key, GOLD_FEATURE_LANDINGS, INPUTS):
            # Another run published since this build: later landing dates, or slices the
            # build did not see. Versions built on the old state must not be published.
            log.warning("inputs changed since the build step (%s): building again", changed)
            computed = build(spark, root, days)
        audit_and_publish(
            spark,
            root,
            STAGE,
            days.key,
            feature_outputs(root, computed),
            {"start": str(computed.start), "end": str(computed.end), "stage": STAGE},
        )


if __name__ == "__main__":
    run_cli(main)
