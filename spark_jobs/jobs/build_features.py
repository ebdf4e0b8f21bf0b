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

The per-day computation is spark_jobs.transforms.feature_versions; this job picks the
range, reads the inputs, checkpoints each day's versions to a scratch folder, stages,
gates and publishes.

    python -m spark_jobs.jobs.build_features --root R --start 2026-03-01 --end 2026-03-31
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    GOLD_FEATURE_LANDINGS,
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_FEATURE_STATE,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    join_path,
    staging_path,
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
from spark_jobs.storage import delta
from spark_jobs.storage import files as storage
from spark_jobs.transforms.feature_versions import (
    ONE_DAY,
    Checkpoint,
    available_at,
    compute_versions,
    feature_frames,
    timestamp_sql,
)
from spark_jobs.transforms.features import latest_versions

log = logging.getLogger(__name__)

STAGE = "features"
# The tables a build reads: a commit to any of them after the build makes it stale.
INPUTS = (GOLD_USER_DAILY_BY_LANDING, GOLD_USER_FEATURE_STATE, GOLD_FEATURE_LANDINGS)


def scratch_path(root: str, run_key: str) -> str:
    """Where a build hands each day's versions to the next: removed once staged."""
    return staging_path(root, GOLD_USER_FEATURE_STATE, f"{run_key}_versions")


def scratch_checkpoint(spark: SparkSession, scratch: str) -> Checkpoint:
    """Each day's versions written to the scratch folder and read back for the next day.

    Reading files back, unlike an in-memory checkpoint, gives the planner real sizes:
    estimates carried over from one day's joins to the next multiply without bound.
    """

    def checkpoint(landing_date: dt.date, versions: DataFrame) -> DataFrame:
        day_path = join_path(scratch, f"landing_date={landing_date}")
        versions.write.mode("overwrite").parquet(day_path)
        return spark.read.parquet(day_path)

    return checkpoint


def published_landings(spark: SparkSession, root: str) -> list[dt.date]:
    """The landing dates whose features are published, in order (none before the first)."""
    landings = delta.read_if_exists(spark, GOLD_FEATURE_LANDINGS.path(root))
    if landings is None:
        return []
    rows = landings.select("_landing_date").distinct().collect()
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
        .collect()[0]
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
        if not delta.is_delta(spark, path):
            rows.write.format("delta").partitionBy(*table.partition_by).save(path)
            return
        history_path = GOLD_USER_FEATURES_HISTORY.path(root)
        source = rows
        if delta.is_delta(spark, history_path):
            owned = (
                spark.read.format("delta")
                .load(path)
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
        view = f"features_publish_{uuid.uuid4().hex}"
        source.createOrReplaceTempView(view)
        try:
            spark.sql(
                f"MERGE INTO {delta.sql_name(path)} AS t USING {view} AS s "
                "ON t.user_id = s.user_id AND t.as_of_date = s.as_of_date "
                "WHEN MATCHED THEN UPDATE SET * "
                "WHEN NOT MATCHED THEN INSERT * "
                f"WHEN NOT MATCHED BY SOURCE AND t.available_at >= {first_of_range} THEN DELETE"
            )
        finally:
            spark.catalog.dropTempView(view)

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
    slices = read_table(spark, root, GOLD_USER_DAILY_BY_LANDING, "build_gold")
    state = delta.read_if_exists(spark, GOLD_USER_FEATURE_STATE.path(root))
    computed_versions = compute_versions(
        slices, state, computed, scratch_checkpoint(spark, scratch)
    )
    frames = feature_frames(spark, computed_versions, computed)
    stage_outputs(spark, root, days.key, frames)
    record_inputs(spark, root, days.key, GOLD_FEATURE_LANDINGS, versions)
    storage.delete_tree(scratch)
    return computed


def main(argv: Sequence[str] | None = None) -> int:
    """Build (stage) and/or gate and publish the feature snapshots of a range of landing dates."""
    parser = job_parser(
        "build_features",
        "Write the user feature snapshots of the landing dates [--start, --end], and "
        "corrected versions of earlier snapshots that late rows changed.",
        steps=STEP_HELP,
    )
    args = parser.parse_args(argv)
    return run_stage_job(
        "build_features",
        STAGE,
        args,
        lambda spark, root, days: run_steps(spark, root, days, args.step),
    )


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
            {"start": str(computed.start), "end": str(computed.end)},
        )


if __name__ == "__main__":
    run_cli(main)
