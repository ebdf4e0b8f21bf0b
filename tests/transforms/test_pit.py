"""Point-in-time joins: randomized agreement with an independent reference, edge cases."""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.transforms import pit
from tests.factories import DAY0, UTC, at, feature_frame, micros, snapshot_row

SPINE_SCHEMA = StructType(
    [
        StructField("spine_row_id", LongType(), False),
        StructField("user_id", StringType(), True),
        StructField("ts", TimestampType(), True),
        StructField("label", IntegerType(), True),
    ]
)
FEATURES = ("lifetime_orders", "monetary_value")
STRATEGIES = ("union", "broadcast")


def spine_frame(spark: SparkSession, rows: list[tuple[str | None, dt.datetime]]) -> DataFrame:
    """A spine with ids 0..n-1 in the given order and label = id % 2."""
    return spark.createDataFrame(
        [(i, user, ts, i % 2) for i, (user, ts) in enumerate(rows)], SPINE_SCHEMA
    )


def bounds_of(rows: list[tuple[str | None, dt.datetime]]) -> pit.SpineBounds:
    """The SpineBounds the job would measure for these spine rows."""
    stamps = [ts for _, ts in rows]
    return pit.SpineBounds(len(rows), min(stamps), max(stamps))


def join(
    spark: SparkSession,
    spine_rows: list[tuple[str | None, dt.datetime]],
    snapshots: list[dict],
    **options: object,
) -> dict[int, tuple[int | None, int | None, int | None]]:
    """{spine_row_id: (lifetime_orders, feature_ts micros, available_at micros)}."""
    result = pit.point_in_time_join(
        spine_frame(spark, spine_rows),
        feature_frame(spark, snapshots),
        FEATURES,
        pit.PitOptions(**options),  # type: ignore[arg-type]
        bounds_of(spine_rows),
    )
    collected = result.select(
        "spine_row_id",
        "lifetime_orders",
        F.unix_micros("feature_ts").alias("ft"),
        F.unix_micros("available_at").alias("av"),
    ).collect()
    assert len(collected) == len(spine_rows)
    return {r["spine_row_id"]: (r["lifetime_orders"], r["ft"], r["av"]) for r in collected}


# ---------------------------------------------------------------- randomized reference


def random_case(seed: int) -> tuple[list[tuple[str, dt.datetime]], list[dict]]:
    """A spine and daily snapshots with gaps, duplicates and users without features."""
    rng = random.Random(seed)
    snapshots = []
    for u in range(12):
        first = rng.randrange(0, 6)
        for day in range(first, 20):
            if rng.random() < 0.25:  # a day's build is missing
                continue
            snapshots.append(snapshot_row(f"u{u}", DAY0 + dt.timedelta(days=day), u * 100 + day))
    spine: list[tuple[str, dt.datetime]] = []
    for _ in range(300):
        user = f"u{rng.randrange(0, 15)}"  # u12..u14 have no snapshots
        start = dt.datetime.combine(DAY0, dt.time(0), tzinfo=UTC)
        if rng.random() < 0.2:  # exactly at a snapshot's feature_ts
            ts = start + dt.timedelta(days=rng.randrange(0, 24))
        else:
            ts = start + dt.timedelta(seconds=rng.randrange(0, 24 * 86400))
        spine.append((user, ts))
    spine += spine[:20]  # duplicated spine rows
    return spine, snapshots


def merge_asof_reference(
    spine: list[tuple[str, dt.datetime]],
    snapshots: list[dict],
    strict: bool,
    ttl_days: int | None,
) -> dict[int, tuple[int | None, int | None]]:
    """{row id: (lifetime_orders, feature_ts micros)} from pandas merge_asof by user.

    The calendar-day TTL is a tolerance: with snapshots stamped at midnight, "feature_ts
    on or after midnight of ts's day minus N days" is "ts - feature_ts < N + 1 days".
    """
    left = pd.DataFrame(
        {"row": range(len(spine)), "user_id": [u for u, _ in spine], "ts": [t for _, t in spine]}
    ).sort_values("ts")
    right = pd.DataFrame(
        {
            "user_id": [s["user_id"] for s in snapshots],
            "feature_ts": [s["feature_ts"] for s in snapshots],
            "value": [s["lifetime_orders"] for s in snapshots],
        }
    ).sort_values("feature_ts")
    tolerance = None
    if ttl_days is not None:
        tolerance = pd.Timedelta(days=ttl_days + 1) - pd.Timedelta(microseconds=1)
    merged = pd.merge_asof(
        left,
        right,
        left_on="ts",
        right_on="feature_ts",
        by="user_id",
        direction="backward",
        allow_exact_matches=not strict,
        tolerance=tolerance,
    )
    expected = {}
    for row in merged.itertuples():
        if pd.isna(row.feature_ts):
            expected[row.row] = (None, None)
        else:
            expected[row.row] = (int(row.value), micros(row.feature_ts.to_pydatetime()))
    return expected


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    ("strict", "ttl_days"), [(False, None), (True, None), (False, 0), (True, 2)]
)
def test_event_time_join_agrees_with_merge_asof(
    spark: SparkSession, strategy: str, strict: bool, ttl_days: int | None
) -> None:
    spine, snapshots = random_case(seed=7 + (ttl_days or 0) + strict)

    got = join(spark, spine, snapshots, strict=strict, ttl_days=ttl_days, strategy=strategy)

    expected = merge_asof_reference(spine, snapshots, strict, ttl_days)
    assert {i: (v, ft) for i, (v, ft, _) in got.items()} == expected


def brute_force_as_known(
    spine: list[tuple[str, dt.datetime]], versions: list[dict]
) -> dict[int, tuple[int | None, int | None, int | None]]:
    """The as_known rule by exhaustive search: latest feature_ts, then latest available_at."""
    expected = {}
    for i, (user, ts) in enumerate(spine):
        seen = [
            v
            for v in versions
            if v["user_id"] == user and v["feature_ts"] <= ts and v["available_at"] <= ts
        ]
        if not seen:
            expected[i] = (None, None, None)
            continue
        best = max(seen, key=lambda v: (v["feature_ts"], v["available_at"]))
        expected[i] = (
            best["lifetime_orders"],
            micros(best["feature_ts"]),
            micros(best["available_at"]),
        )
    return expected


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_as_known_join_agrees_with_exhaustive_search(spark: SparkSession, strategy: str) -> None:
    rng = random.Random(11)
    spine, snapshots = random_case(seed=11)
    versions = []
    for s in snapshots:
        versions.append(
            {**s, "available_at": s["feature_ts"] + dt.timedelta(hours=rng.randrange(0, 30))}
        )
        if rng.random() < 0.3:  # a late correction, known days later
            late = s["feature_ts"] + dt.timedelta(hours=rng.randrange(30, 120))
            versions.append(
                {**s, "lifetime_orders": s["lifetime_orders"] + 10_000, "available_at": late}
            )

    got = join(spark, spine, versions, mode="as_known", strategy=strategy)

    assert got == brute_force_as_known(spine, versions)


# ---------------------------------------------------------------- edge cases by hand


DAILY = [snapshot_row("a", DAY0 + dt.timedelta(days=d), d) for d in range(0, 5)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ts_exactly_at_feature_ts_sees_that_snapshot_unless_strict(
    spark: SparkSession, strategy: str
) -> None:
    spine = [("a", at(3))]  # snapshot of day 2 is stamped at day 3, 00:00

    inclusive = join(spark, spine, DAILY, strategy=strategy)
    strict = join(spark, spine, DAILY, strategy=strategy, strict=True)

    assert inclusive[0][0] == 2
    assert strict[0][0] == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ts_before_any_snapshot_and_users_without_features_get_nulls(
    spark: SparkSession, strategy: str
) -> None:
    spine = [("a", at(0, 23, 59)), ("nobody", at(3)), ("a", at(1, 0, 1))]

    got = join(spark, spine, DAILY, strategy=strategy)

    assert got == {
        0: (None, None, None),
        1: (None, None, None),
        2: (0, micros(at(1)), micros(at(1))),
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ttl_counts_utc_calendar_days_back_from_ts_day(spark: SparkSession, strategy: str) -> None:
    gap = [snapshot_row("a", DAY0, 0)]  # feature_ts = day 1, 00:00, then nothing
    spine = [("a", at(1, 23, 59)), ("a", at(2, 0, 0)), ("a", at(2, 23)), ("a", at(3, 0, 1))]

    same_day = join(spark, spine, gap, strategy=strategy, ttl_days=0)
    one_day = join(spark, spine, gap, strategy=strategy, ttl_days=1)
    unbounded = join(spark, spine, gap, strategy=strategy)

    assert [same_day[i][0] for i in range(4)] == [0, None, None, None]
    assert [one_day[i][0] for i in range(4)] == [0, 0, 0, None]
    assert [unbounded[i][0] for i in range(4)] == [0, 0, 0, 0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_duplicated_spine_rows_stay_duplicated(spark: SparkSession, strategy: str) -> None:
    spine = [("a", at(2, 5))] * 3 + [("a", at(4, 5))]

    got = join(spark, spine, DAILY, strategy=strategy)

    assert [got[i][0] for i in range(4)] == [1, 1, 1, 3]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_availability_delay_postpones_when_a_snapshot_is_usable(
    spark: SparkSession, strategy: str
) -> None:
    spine = [("a", at(3, 5, 59)), ("a", at(3, 6, 0)), ("a", at(3, 6, 1))]

    inclusive = join(spark, spine, DAILY, strategy=strategy, availability_delay_hours=6)
    strict = join(spark, spine, DAILY, strategy=strategy, availability_delay_hours=6, strict=True)

    assert [inclusive[i][0] for i in range(3)] == [1, 2, 2]
    assert [strict[i][0] for i in range(3)] == [1, 1, 2]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_as_known_hides_a_correction_until_it_was_available(
    spark: SparkSession, strategy: str
) -> None:
    corrected = snapshot_row("a", DAY0 + dt.timedelta(days=2), 999, available_at=at(4, 12))
    versions = [*DAILY, corrected]
    current = [s for s in DAILY if s["as_of_date"] != corrected["as_of_date"]] + [corrected]
    spine = [("a", at(3, 12)), ("a", at(4, 11)), ("a", at(4, 12)), ("a", at(3, 0))]

    event_time = join(spark, spine, current, strategy=strategy)
    as_known = join(spark, spine, versions, strategy=strategy, mode="as_known")

    # event_time sees the corrected day-2 snapshot; as_known only once it was known,
    # and by then (day 4, 12:00) the day-3 snapshot is the latest anyway.
    assert [event_time[i][0] for i in range(4)] == [999, 3, 3, 999]
    assert [as_known[i][0] for i in range(4)] == [2, 3, 3, 2]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_as_known_prefers_latest_snapshot_over_later_known_older_correction(
    spark: SparkSession, strategy: str
) -> None:
    late_fix_of_day1 = snapshot_row("a", DAY0 + dt.timedelta(days=1), 111, available_at=at(3, 1))
    spine = [("a", at(3, 2)), ("a", at(2, 2))]

    got = join(spark, spine, [*DAILY, late_fix_of_day1], strategy=strategy, mode="as_known")

    assert got[0][0] == 2  # day 2's snapshot, not the newer-known fix of day 1
    assert got[1][0] == 1  # the fix was not known yet at day 2


def test_feature_age_is_whole_seconds_since_feature_ts(spark: SparkSession) -> None:
    spine = [("a", at(3, 1, 30) + dt.timedelta(microseconds=900_000))]
    result = pit.point_in_time_join(
        spine_frame(spark, spine),
        feature_frame(spark, DAILY),
        FEATURES,
        pit.PitOptions(),
        bounds_of(spine),
    )

    assert result.select("feature_age").first()[0] == 5400


# ---------------------------------------------------------------- leakage check


LEAK_SCHEMA = StructType(
    [
        StructField("spine_row_id", LongType(), False),
        StructField("ts", TimestampType(), False),
        StructField("feature_ts", TimestampType(), True),
        StructField("available_at", TimestampType(), True),
    ]
)


def test_leakage_check_flags_future_unknown_and_stale_rows(spark: SparkSession) -> None:
    crafted = spark.createDataFrame(
        [
            (0, at(3), at(3), at(3)),  # clean inclusive, leak under strict
            (1, at(3), at(3, 0, 1), at(3, 0, 1)),  # feature_ts after ts
            (2, at(3), at(2), at(3, 0, 1)),  # known only after ts
            (3, at(3), None, None),  # no match: never a leak
            (4, at(3, 5), at(1), at(1)),  # two days old: stale under ttl 1
        ],
        LEAK_SCHEMA,
    )

    def flagged(**options: object) -> list[int]:
        found = pit.leakage_violations(crafted, pit.PitOptions(**options))  # type: ignore[arg-type]
        return sorted(r[0] for r in found.select("spine_row_id").collect())

    assert flagged() == [1]
    assert flagged(strict=True) == [0, 1]
    assert flagged(mode="as_known") == [1, 2]
    assert flagged(ttl_days=1) == [1, 4]
