"""Point-in-time joins of a spine of (user_id, ts) rows to daily feature snapshots.

Pure transforms: nothing here runs a Spark action. The rule they implement (see
docs/TRAINING_SETS.md): each spine row gets the latest snapshot whose ``feature_ts``
(plus an optional availability delay) is at or before ``ts`` (strictly before with
``strict``), and within the TTL if one is set. In ``as_known`` mode only versions with
``available_at <= ts`` are candidates, and among those the latest ``feature_ts`` wins,
then the latest ``available_at``: what a model serving at ``ts`` really had.

Every spine row carries ``spine_row_id``; the joins keep exactly one output row per id,
so duplicated spine rows stay duplicated and are never multiplied or collapsed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

MODES = ("event_time", "as_known")
STRATEGIES = ("auto", "union", "broadcast")

ROW_ID = "spine_row_id"
SPINE_KEY = "user_id"
SPINE_TS = "ts"
FEATURE_TS = "feature_ts"
AVAILABLE_AT = "available_at"
FEATURE_AGE = "feature_age"
METADATA_COLUMNS = (FEATURE_TS, AVAILABLE_AT, FEATURE_AGE)
# Columns of a feature table that describe the snapshot rather than hold a feature.
SNAPSHOT_COLUMNS = ("user_id", "as_of_date", FEATURE_TS, AVAILABLE_AT)

# Up to this many spine rows, "auto" broadcasts the spine instead of shuffling the
# feature table: the candidate pairs stay small while the snapshots are scanned once.
BROADCAST_MAX_SPINE_ROWS = 50_000

MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR

# Tie-break ranks in the sorted union: a snapshot version sorted before a spine row at
# the same instant is visible to it, one sorted after is not.
_VISIBLE_AT_TIE = 0
_SPINE_RANK = 1
_HIDDEN_AT_TIE = 2


@dataclass(frozen=True)
class PitOptions:
    """How a spine is matched to snapshots; see docs/TRAINING_SETS.md for each field."""

    mode: str = "event_time"
    ttl_days: int | None = None  # None: unbounded; 0: a snapshot of ts's own UTC day
    strict: bool = False  # feature_ts + delay < ts instead of <=
    availability_delay_hours: int = 0
    strategy: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if self.ttl_days is not None and self.ttl_days < 0:
            raise ValueError(f"ttl_days {self.ttl_days} must be >= 0 (or None: unbounded)")
        if self.availability_delay_hours < 0:
            raise ValueError(
                f"availability_delay_hours {self.availability_delay_hours} must be >= 0"
            )


@dataclass(frozen=True)
class SpineBounds:
    """Row count and ts range (aware UTC datetimes) of a spine, measured at the read edge."""

    rows: int
    min_ts: dt.datetime | None
    max_ts: dt.datetime | None

    @classmethod
    def from_micros(cls, rows: int, min_micros: int | None, max_micros: int | None) -> SpineBounds:
        """Bounds from epoch microseconds, so the Python process's time zone plays no part."""

        def utc(micros: int | None) -> dt.datetime | None:
            if micros is None:
                return None
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)

        return cls(rows, utc(min_micros), utc(max_micros))


def choose_strategy(options: PitOptions, bounds: SpineBounds) -> str:
    """The join strategy to run: the requested one, or for "auto" one chosen by spine size."""
    if options.strategy != "auto":
        return options.strategy
    return "broadcast" if bounds.rows <= BROADCAST_MAX_SPINE_ROWS else "union"


def prune_features(features: DataFrame, bounds: SpineBounds, options: PitOptions) -> DataFrame:
    """The snapshot rows that can match some spine row, filtered on literal dates.

    Literal bounds on ``as_of_date`` (the partition column) let Delta skip whole days;
    the bounds are generous by a day on each side, the join applies the exact rule.
    """
    if bounds.max_ts is None:
        return features.where(F.lit(False))
    last_day = bounds.max_ts.date()
    pruned = features.where(F.col("as_of_date") <= F.lit(last_day))
    if options.mode == "as_known":
        pruned = pruned.where(F.col(AVAILABLE_AT) <= F.lit(bounds.max_ts))
    if options.ttl_days is not None and bounds.min_ts is not None:
        first_day = bounds.min_ts.date() - dt.timedelta(days=options.ttl_days + 1)
        pruned = pruned.where(F.col("as_of_date") >= F.lit(first_day))
    return pruned


def point_in_time_join(
    spine: DataFrame,
    features: DataFrame,
    feature_columns: Sequence[str],
    options: PitOptions,
    bounds: SpineBounds,
) -> DataFrame:
    """The spine's rows, each with the snapshot it may see, its feature_ts/available_at/age.

    ``spine`` must hold ``spine_row_id``, ``user_id`` and ``ts`` (UTC instants);
    ``features`` is the current table (event_time) or the history of every version
    (as_known). Rows without a snapshot in reach get nulls. ``feature_age`` is in whole
    seconds (``ts - feature_ts``, rounded down).
    """
    pruned = prune_features(features, bounds, options)
    strategy = choose_strategy(options, bounds)
    if strategy == "broadcast":
        matched = _broadcast_join(spine, pruned, feature_columns, options)
    else:
        matched = _union_join(spine, pruned, feature_columns, options)
    return _expand(matched, spine.columns, feature_columns)


def _feature_struct(features: DataFrame, feature_columns: Sequence[str]) -> Column:
    # feature_ts first, then available_at: max() over this struct picks the latest
    # snapshot, then its latest version, which is the as_known rule (and event_time's).
    return F.struct(
        F.col(FEATURE_TS), F.col(AVAILABLE_AT), *[F.col(c) for c in feature_columns]
    ).alias("_feature")


def _usable_from_micros(options: PitOptions) -> Column:
    delay = F.lit(options.availability_delay_hours * MICROS_PER_HOUR)
    return F.unix_micros(F.col(FEATURE_TS)) + delay


def _visible_to(ts_micros: Column, options: PitOptions) -> Column:
    usable_from = _usable_from_micros(options)
    visible = usable_from < ts_micros if options.strict else usable_from <= ts_micros
    if options.mode == "as_known":
        visible = visible & (F.unix_micros(F.col(AVAILABLE_AT)) <= ts_micros)
    return visible


def _oldest_allowed_micros(ts_micros: Column, ttl_days: int) -> Column:
    # Midnight UTC of ts's day minus the TTL, in integer micros so the session time
    # zone cannot shift the day boundary.
    day_start = ts_micros - F.pmod(ts_micros, F.lit(MICROS_PER_DAY))
    return day_start - F.lit(ttl_days * MICROS_PER_DAY)


def _union_join(
    spine: DataFrame, features: DataFrame, feature_columns: Sequence[str], options: PitOptions
) -> DataFrame:
    """Spine rows with ``_feature``: a sorted union with a running max per user.

    Snapshot versions enter the per-user timeline at the instant they become usable;
    each spine row takes the max of what came before it (or at the same instant, when
    the rule allows). One shuffle and one sort of both sides, no candidate pairs, and
    gaps in the daily snapshots need no special case.
    """
    usable_from = _usable_from_micros(options)
    if options.mode == "as_known":
        known_from = F.unix_micros(F.col(AVAILABLE_AT))
        enters_at = F.greatest(usable_from, known_from)
        # Under strict, a version entering at ts is visible only if it was held back
        # by available_at (inclusive), not by feature_ts + delay (exclusive).
        tie = (
            F.when(known_from > usable_from, F.lit(_VISIBLE_AT_TIE)).otherwise(
                F.lit(_HIDDEN_AT_TIE)
            )
            if options.strict
            else F.lit(_VISIBLE_AT_TIE)
        )
    else:
        enters_at = usable_from
        tie = F.lit(_HIDDEN_AT_TIE if options.strict else _VISIBLE_AT_TIE)

    spine_columns = spine.columns
    feature_type = features.select(_feature_struct(features, feature_columns)).schema[0].dataType
    spine_type = spine.select(F.struct(*spine_columns).alias("_spine")).schema[0].dataType

    spine_side = spine.select(
        F.col(SPINE_KEY).alias("_key"),
        F.unix_micros(F.col(SPINE_TS)).alias("_at"),
        F.lit(_SPINE_RANK).alias("_rank"),
        F.struct(*spine_columns).alias("_spine"),
        F.lit(None).cast(feature_type).alias("_feature"),
    )
    feature_side = features.select(
        F.col("user_id").alias("_key"),
        enters_at.alias("_at"),
        tie.alias("_rank"),
        F.lit(None).cast(spine_type).alias("_spine"),
        _feature_struct(features, feature_columns),
    )
    timeline = (
        Window.partitionBy("_key")
        .orderBy("_at", "_rank")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    matched = (
        spine_side.unionByName(feature_side)
        .withColumn("_seen", F.max("_feature").over(timeline))
        .where(F.col("_rank") == _SPINE_RANK)
    )
    feature = F.col("_seen")
    if options.ttl_days is not None:
        oldest = _oldest_allowed_micros(F.col("_at"), options.ttl_days)
        feature = F.when(F.unix_micros(F.col(f"_seen.{FEATURE_TS}")) >= oldest, feature)
    return matched.select(F.col("_spine.*"), feature.alias("_feature"))


def _broadcast_join(
    spine: DataFrame, features: DataFrame, feature_columns: Sequence[str], options: PitOptions
) -> DataFrame:
    """Spine rows with ``_feature``: the spine broadcast, candidates ranked by max.

    For small spines: the snapshots are scanned once without a shuffle, and only the
    few candidate pairs are aggregated per spine row.
    """
    ts_micros = F.unix_micros(F.col("_ts"))
    keys = spine.select(
        F.col(ROW_ID).alias("_row"), F.col(SPINE_KEY).alias("_key"), F.col(SPINE_TS).alias("_ts")
    )
    condition = _visible_to(ts_micros, options)
    if options.ttl_days is not None:
        condition = condition & (
            F.unix_micros(F.col(FEATURE_TS)) >= _oldest_allowed_micros(ts_micros, options.ttl_days)
        )
    candidates = (
        features.join(F.broadcast(keys), F.col("user_id") == F.col("_key"))
        .where(condition)
        .groupBy("_row")
        .agg(F.max(_feature_struct(features, feature_columns)).alias("_feature"))
    )
    return spine.join(candidates, spine[ROW_ID] == candidates["_row"], "left").drop("_row")


def _expand(
    matched: DataFrame, spine_columns: Sequence[str], feature_columns: Sequence[str]
) -> DataFrame:
    age_seconds = F.floor(
        (F.unix_micros(F.col(SPINE_TS)) - F.unix_micros(F.col(f"_feature.{FEATURE_TS}"))) / 1e6
    ).cast("long")
    return matched.select(
        *[F.col(c) for c in spine_columns],
        *[F.col(f"_feature.{c}").alias(c) for c in feature_columns],
        F.col(f"_feature.{FEATURE_TS}").alias(FEATURE_TS),
        F.col(f"_feature.{AVAILABLE_AT}").alias(AVAILABLE_AT),
        age_seconds.alias(FEATURE_AGE),
    )


def leakage_violations(
    training: DataFrame,
    options: PitOptions,
    metadata_prefixes: Sequence[str] = ("",),
) -> DataFrame:
    """The rows of a training set that saw data they could not have had at ``ts``.

    A row leaks when its ``feature_ts`` + delay is after ``ts`` (at or after, under
    strict), in as_known mode when its ``available_at`` is after ``ts``, and when its
    snapshot is older than the TTL allows. ``metadata_prefixes`` names the
    ``<prefix>feature_ts`` / ``<prefix>available_at`` pairs to check (one per feature
    table). Empty when the set is clean.
    """
    ts_micros = F.unix_micros(F.col(SPINE_TS))
    delay = options.availability_delay_hours * MICROS_PER_HOUR
    leak = F.lit(False)
    for prefix in metadata_prefixes:
        feature_micros = F.unix_micros(F.col(f"{prefix}{FEATURE_TS}")) + F.lit(delay)
        future = feature_micros >= ts_micros if options.strict else feature_micros > ts_micros
        leak = leak | F.coalesce(future, F.lit(False))
        if options.mode == "as_known":
            unknown = F.unix_micros(F.col(f"{prefix}{AVAILABLE_AT}")) > ts_micros
            leak = leak | F.coalesce(unknown, F.lit(False))
        if options.ttl_days is not None:
            stale = F.unix_micros(F.col(f"{prefix}{FEATURE_TS}")) < _oldest_allowed_micros(
                ts_micros, options.ttl_days
            )
            leak = leak | F.coalesce(stale, F.lit(False))
    return training.where(leak)
