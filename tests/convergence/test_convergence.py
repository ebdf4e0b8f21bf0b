"""Convergence: the published tables depend on the landed files and the landing dates
processed, never on the order or repetition of the runs.

Every job runs for real (build, Great Expectations gate, publish) through its ``main``;
the random reruns print their seed, and ``LAKEHOUSE_SCHEDULE_SEED`` replays it.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from devtools import generate_purchases
from spark_jobs.catalog import (
    GOLD_USER_DAILY,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    SILVER_PURCHASES,
)
from spark_jobs.jobs import build_gold, build_silver, ingest_bronze
from tests.factories import (
    differences,
    land,
    published_rows,
    purchase,
    run_day,
    run_range,
    run_stage,
)

FEED_START = dt.date(2026, 3, 1)
FEED_DAYS = 4
# Enough customers that the generator's fixed number of defects a day stays under the
# silver gate's quarantine share.
FEED_USERS = 150


def test_a_duplicate_delivery_counts_once_in_gold_when_the_later_landing_ran_first(
    spark, lakehouse
):
    early, late = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    twice = purchase("e-twice", "u1", "2026-03-01T10:00:00Z", quantity=2)
    land(lakehouse, early, [twice, purchase("e-a", "u2", "2026-03-01T11:00:00Z")])
    land(lakehouse, late, [twice, purchase("e-b", "u2", "2026-03-02T09:00:00Z")])
    run_stage(ingest_bronze, lakehouse, early)
    run_stage(ingest_bronze, lakehouse, late)

    for day in (late, early):
        run_day(lakehouse, day, stages=(build_silver, build_gold))

    silver = spark.read.format("delta").load(SILVER_PURCHASES.path(lakehouse))
    assert silver.where(F.col("event_id") == "e-twice").count() == 1
    gold = spark.read.format("delta").load(GOLD_USER_DAILY.path(lakehouse))
    [u1] = gold.where((F.col("user_id") == "u1") & (F.col("event_date") == early)).collect()
    assert (u1["orders"], u1["items"], u1["gross_usd"]) == (1, 2, Decimal("20.0000"))


def test_a_rerun_that_drops_a_user_drops_their_feature_snapshot(spark, lakehouse):
    day = dt.date(2026, 3, 1)
    land(
        lakehouse,
        day,
        [
            purchase("e-1", "u1", "2026-03-01T10:00:00Z"),
            purchase("e-2", "u2", "2026-03-01T11:00:00Z"),
        ],
    )
    run_day(lakehouse, day)
    # The order system re-exports the day without u2's line; the day is rerun.
    land(lakehouse, day, [purchase("e-1", "u1", "2026-03-01T10:00:00Z")])
    run_day(lakehouse, day)

    for table in (GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY):
        frame = spark.read.format("delta").load(table.path(lakehouse))
        assert sorted(r["user_id"] for r in frame.collect()) == ["u1"], table.name


def test_a_day_run_while_the_day_before_never_ran_counts_the_whole_history(spark, lakehouse):
    # Days 1 and 3 run; day 2 is still waiting for its files. Day 3's snapshot must
    # still count every order known by then (lifetime never below the 7-day count), and
    # count day 2's order once day 2 runs. (The schedule test compares whole tables.)
    days = [dt.date(2026, 3, n) for n in (1, 2, 3)]
    for number, day in enumerate(days):
        land(lakehouse, day, [purchase(f"e-{number}", "u1", f"{day}T10:00:00Z")])
    for day in (days[0], days[2]):
        run_day(lakehouse, day)

    features = spark.read.format("delta").load(GOLD_USER_FEATURES.path(lakehouse))
    [snapshot] = features.where(F.col("as_of_date") == days[2]).collect()
    assert (snapshot["lifetime_orders"], snapshot["orders_7d"]) == (2, 2)

    # Day 2 runs at last: day 3 is recomputed on top of it.
    run_day(lakehouse, days[1])
    features = spark.read.format("delta").load(GOLD_USER_FEATURES.path(lakehouse))
    [snapshot] = features.where(F.col("as_of_date") == days[2]).collect()
    assert (snapshot["lifetime_orders"], snapshot["orders_7d"]) == (3, 3)


@pytest.fixture(scope="module")
def generated_feed(tmp_path_factory) -> Path:
    """A generated multi-day feed (retries, late events, refunds, defects), landed once."""
    folder = tmp_path_factory.mktemp("feed")
    end = FEED_START + dt.timedelta(days=FEED_DAYS - 1)
    argv = ["--root", str(folder), "--start", str(FEED_START), "--end", str(end)]
    assert generate_purchases.main([*argv, "--users", str(FEED_USERS), "--skip-dates", "none"]) == 0
    return folder


def lakehouse_with_feed(feed: Path, tmp_path: Path, name: str) -> str:
    """A new lakehouse whose landing folder is a copy of the generated feed."""
    root = tmp_path / name
    shutil.copytree(feed / "landing", root / "landing")
    return str(root)


@pytest.fixture(scope="module")
def in_order(spark, generated_feed, tmp_path_factory) -> dict[str, list[tuple]]:
    """The tables of one in-order pass: every stage over the whole feed, in order."""
    root = lakehouse_with_feed(generated_feed, tmp_path_factory.mktemp("in-order"), "lakehouse")
    run_range(root, FEED_START, FEED_START + dt.timedelta(days=FEED_DAYS - 1))
    return published_rows(spark, root)


def test_out_of_order_days_then_random_reruns_build_the_tables_of_the_in_order_pass(
    spark, generated_feed, in_order, tmp_path
):
    # The order of the recipe: 03, 01, 04, 02, one day at a time, every stage.
    root = lakehouse_with_feed(generated_feed, tmp_path, "lakehouse")
    days = [FEED_START + dt.timedelta(days=n) for n in range(FEED_DAYS)]
    for number in (2, 0, 3, 1):
        run_day(root, days[number])
    assert differences(published_rows(spark, root), in_order) == []

    # Then reruns of two days in a random order (an operator clearing days after later
    # ones ran): the seed is printed on failure and LAKEHOUSE_SCHEDULE_SEED replays it.
    seed = int(os.environ.get("LAKEHOUSE_SCHEDULE_SEED") or random.SystemRandom().randrange(10**6))
    reruns = random.Random(seed).sample(days, 2)
    for day in reruns:
        run_day(root, day)
    problems = differences(published_rows(spark, root), in_order)
    assert problems == [], (
        f"reruns {[str(d) for d in reruns]} after 03,01,04,02 "
        f"(LAKEHOUSE_SCHEDULE_SEED={seed}) diverged"
    )
