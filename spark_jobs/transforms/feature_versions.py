"""The feature versions of a range of landing dates, day after day, from daily slices.

``compute_versions`` runs the landing dates of a range in order: each day starts from
the previous days' per-user state (the range's own days, and the published
gold.user_feature_state before the range) and the last ``LONGEST_WINDOW`` days of
slices, and gives the wide version frame of ``features.versions_of``. It reads and
writes nothing itself: the job passes in the frames it read and a ``Checkpoint`` that
stores each day's versions and hands back what the next day reads. Unlike the
transforms in ``features``, it runs Spark actions (a collect, in-memory checkpoints,
the checkpoint callable) to keep each day's query plan small.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    GOLD_FEATURE_LANDINGS,
    GOLD_FEATURE_LANDINGS_SCHEMA,
    GOLD_USER_FEATURE_STATE,
    GOLD_USER_FEATURE_STATE_SCHEMA,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    Table,
)
from spark_jobs.cli import DateRange
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

ONE_DAY = dt.timedelta(days=1)

# Stores one landing date's versions and returns the frame to read them back from.
Checkpoint = Callable[[dt.date, DataFrame], DataFrame]


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


def compute_versions(
    slices_all: DataFrame,
    published_state: DataFrame | None,
    days: DateRange,
    checkpoint: Checkpoint,
) -> list[DataFrame]:
    """The wide version frames (see ``features.versions_of``) of each landing date.

    ``slices_all`` is gold.user_daily_by_landing, ``published_state`` the published
    gold.user_feature_state (None before the first publish). Days run in order; each
    day's versions go through ``checkpoint`` and what it returns is the next day's
    previous state, so a range costs one job start, not one per day. Published state is
    used only as it was before the range (versions available by ``days.start`` 00:00),
    which makes a rerun see what the first run saw.
    """
    spark = slices_all.sparkSession
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
    state_before = (
        published_state.where(
            F.col("available_at") <= F.expr(timestamp_sql(available_at(days.start - ONE_DAY)))
        )
        if published_state is not None
        else None
    )
    produced: list[tuple[dt.date, DataFrame]] = []
    total = len(days)
    for number, landing_date in enumerate(days.days(), start=1):
        start = starts[landing_date]
        base_from = start - ONE_DAY
        sources = [
            state_rows(versions).where(F.col("as_of_date") >= F.lit(base_from))
            for produced_on, versions in produced
            if produced_on >= base_from
        ]
        if state_before is not None and base_from < days.start:
            sources.append(
                state_before.where(
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
        versions = versions_of(state, window_features(state, daily))
        produced.append((landing_date, checkpoint(landing_date, versions)))
        # Progress of a backfill, a line per landing date. The count is one more small
        # Spark job over what the checkpoint has just materialised, not a recomputation.
        log.info(
            "features: landing date %s, day %d of %d: %d snapshot versions from %s",
            landing_date,
            number,
            total,
            produced[-1][1].count(),
            start,
        )
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
