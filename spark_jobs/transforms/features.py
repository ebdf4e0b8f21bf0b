"""Pure transforms behind gold.user_daily and gold.user_features.

Every function here maps DataFrames to DataFrames and runs no Spark action; the jobs
(`build_gold`, `build_features`) read and write, and `feature_versions` runs them day
after day over a range of landing dates.

The central idea: a *slice* is what one landing date added to one (user, event_date).
The daily values "known at landing date L" are the merge of the slices landed on or
before L, so a one-call backfill, which runs when silver already holds later landings,
computes every version from exactly the rows the daily run of that date saw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructField

from spark_jobs.catalog import (
    FEATURE_WINDOWS,
    GOLD_USER_DAILY_BY_LANDING_SCHEMA,
    GOLD_USER_DAILY_SCHEMA,
    GOLD_USER_FEATURE_STATE_SCHEMA,
    GOLD_USER_FEATURES_SCHEMA,
    MONEY,
)

LONGEST_WINDOW = max(FEATURE_WINDOWS)

# Lifetime totals carried from one snapshot to the next (gold.user_feature_state).
_STATE_TOTALS = ("lifetime_orders", "lifetime_net_usd", "purchase_days", "purchase_days_net_usd")


def _money(column: Column) -> Column:
    return column.cast(MONEY)


def _columns(schema_fields: Iterable[StructField]) -> list[str]:
    return [f.name for f in schema_fields]


def midnight_utc(day: dt.date) -> Column:
    """A timestamp literal for 00:00 UTC of ``day`` (the session time zone is UTC)."""
    return F.lit(day.isoformat()).cast("date").cast("timestamp")


def landing_slices(silver: DataFrame) -> DataFrame:
    """One row per (user_id, event_date, _landing_date): what that landing added that day.

    Purchases count towards orders (distinct order_ids), items, gross and categories;
    refunds (negative amount_usd in silver) towards refunds_usd, as a positive amount,
    and refund_count (refund lines). Rows with a null category still count everywhere
    except ``category_items``.
    """
    is_purchase = F.col("event_type") == "purchase"
    is_refund = F.col("event_type") == "refund"
    day_key = ["user_id", "event_date", "_landing_date"]
    per_category = silver.groupBy(*day_key, "category").agg(
        F.collect_set(F.when(is_purchase, F.col("order_id"))).alias("order_ids"),
        F.sum(F.when(is_purchase, F.col("quantity")).otherwise(0)).cast("long").alias("items"),
        F.sum(F.when(is_purchase, F.col("amount_usd")).otherwise(0)).alias("gross_usd"),
        F.sum(F.when(is_refund, -F.col("amount_usd")).otherwise(0)).alias("refunds_usd"),
        F.count(F.when(is_refund, 1)).alias("refund_count"),
        F.min("event_time").alias("first_event_time"),
        F.max("event_time").alias("last_event_time"),
    )
    category_item = F.when(
        F.col("category").isNotNull() & (F.col("items") > 0),
        F.struct(F.col("category"), F.col("items")),
    )
    slices = per_category.groupBy(*day_key).agg(
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("order_ids")))).alias(
            "purchase_order_ids"
        ),
        F.sum("items").cast("long").alias("items"),
        _money(F.sum("gross_usd")).alias("gross_usd"),
        _money(F.sum("refunds_usd")).alias("refunds_usd"),
        F.sum("refund_count").cast("long").alias("refund_count"),
        F.array_sort(F.collect_list(category_item)).alias("category_items"),
        F.min("first_event_time").alias("first_event_time"),
        F.max("last_event_time").alias("last_event_time"),
    )
    return slices.select(_columns(GOLD_USER_DAILY_BY_LANDING_SCHEMA.fields))


def merge_slices(slices: DataFrame) -> DataFrame:
    """One row per (user_id, event_date): the day's totals over all the given slices.

    Filter the slices to ``_landing_date <= L`` first to get the day as known at L. An
    order whose lines landed on two dates counts once. ``category_items`` may list a
    category more than once (once per landing); sum it before ranking.
    """
    merged = slices.groupBy("user_id", "event_date").agg(
        F.size(F.array_distinct(F.flatten(F.collect_list("purchase_order_ids"))))
        .cast("long")
        .alias("orders"),
        F.sum("items").cast("long").alias("items"),
        _money(F.sum("gross_usd")).alias("gross_usd"),
        _money(F.sum("refunds_usd")).alias("refunds_usd"),
        F.sum("refund_count").cast("long").alias("refund_count"),
        F.flatten(F.collect_list("category_items")).alias("category_items"),
        F.min("first_event_time").alias("first_event_time"),
        F.max("last_event_time").alias("last_event_time"),
    )
    return merged.withColumn(
        "net_usd", _money(F.col("gross_usd") - F.col("refunds_usd"))
    ).withColumn(
        "distinct_categories",
        F.size(F.array_distinct(F.transform("category_items", lambda c: c["category"]))).cast(
            "long"
        ),
    )


def user_daily(daily: DataFrame) -> DataFrame:
    """gold.user_daily rows from merged daily totals (see ``merge_slices``).

    A user with only refunds on a day still gets a row (orders 0, items 0).
    """
    return daily.select(_columns(GOLD_USER_DAILY_SCHEMA.fields))


def latest_versions(
    versions: DataFrame, key: tuple[str, ...] = ("user_id", "as_of_date")
) -> DataFrame:
    """The newest version (largest ``available_at``) of each key."""
    newest_first = Window.partitionBy(*key).orderBy(F.col("available_at").desc())
    return (
        versions.withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def snapshot_starts(
    previous_state: DataFrame, landed: DataFrame, landing_date: dt.date
) -> DataFrame:
    """(user_id, start_date): the first as_of_date the run for ``landing_date`` rewrites.

    Every user of the previous snapshot gets ``landing_date`` (the new regular snapshot);
    a user with rows landed on ``landing_date`` gets the earliest event_date they touch,
    because every snapshot from that day on (lifetime included) contains the changed day.
    ``previous_state`` is the state at as_of_date = landing_date - 1; ``landed`` has
    (user_id, event_date) of the slices landed on ``landing_date``.
    """
    regular = previous_state.select("user_id", F.lit(landing_date).alias("start_date"))
    touched = landed.select("user_id", F.col("event_date").alias("start_date"))
    return (
        regular.unionByName(touched).groupBy("user_id").agg(F.min("start_date").alias("start_date"))
    )


def lifetime_state(
    starts: DataFrame, base_state: DataFrame, daily: DataFrame, landing_date: dt.date
) -> DataFrame:
    """gold.user_feature_state rows for every (user, as_of_date) from start to landing_date.

    ``base_state`` holds the latest known state rows; each user's row at
    as_of_date = start_date - 1 is the starting point (none: a user new to that day).
    ``daily`` holds the merged days as known at ``landing_date`` and must cover
    [min start_date, landing_date]. Days before start_date are unchanged by this landing,
    so state(D) = state(start - 1) + the days start..D.
    """
    grid = starts.select(
        "user_id",
        "start_date",
        F.explode(F.sequence(F.col("start_date"), F.lit(landing_date))).alias("as_of_date"),
    )
    days = daily.select("user_id", F.col("event_date").alias("as_of_date"), "orders", "net_usd")
    running = (
        Window.partitionBy("user_id")
        .orderBy("as_of_date")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    is_purchase_day = F.coalesce(F.col("orders"), F.lit(0)) > 0
    net = F.coalesce(F.col("net_usd"), F.lit(0).cast(MONEY))
    run = grid.join(days, ["user_id", "as_of_date"], "left").select(
        "user_id",
        "start_date",
        "as_of_date",
        F.sum(F.coalesce(F.col("orders"), F.lit(0))).over(running).alias("run_orders"),
        F.sum(net).over(running).alias("run_net"),
        F.sum(F.when(is_purchase_day, 1).otherwise(0)).over(running).alias("run_purchase_days"),
        F.sum(F.when(is_purchase_day, net).otherwise(0)).over(running).alias("run_purchase_net"),
        F.min(F.when(is_purchase_day, F.col("as_of_date"))).over(running).alias("run_first"),
        F.max(F.when(is_purchase_day, F.col("as_of_date"))).over(running).alias("run_last"),
        F.first(F.when(is_purchase_day, net), ignorenulls=True)
        .over(running)
        .alias("run_first_net"),
    )
    base = base_state.select(
        "user_id",
        F.date_add("as_of_date", 1).alias("start_date"),
        *[F.col(c).alias(f"base_{c}") for c in (*_STATE_TOTALS, "first_purchase_date")],
        F.col("last_purchase_date").alias("base_last_purchase_date"),
        F.col("first_purchase_day_net_usd").alias("base_first_net"),
    )
    joined = run.join(base, ["user_id", "start_date"], "left")

    def plus_base(name: str, running_total: str) -> Column:
        return F.coalesce(F.col(f"base_{name}"), F.lit(0)) + F.col(running_total)

    has_base_first = F.col("base_first_purchase_date").isNotNull()
    return joined.select(
        "user_id",
        "as_of_date",
        midnight_utc(landing_date + dt.timedelta(days=1)).alias("available_at"),
        F.coalesce("base_first_purchase_date", "run_first").alias("first_purchase_date"),
        F.coalesce("run_last", "base_last_purchase_date").alias("last_purchase_date"),
        plus_base("lifetime_orders", "run_orders").cast("long").alias("lifetime_orders"),
        _money(plus_base("lifetime_net_usd", "run_net")).alias("lifetime_net_usd"),
        plus_base("purchase_days", "run_purchase_days").cast("long").alias("purchase_days"),
        _money(plus_base("purchase_days_net_usd", "run_purchase_net")).alias(
            "purchase_days_net_usd"
        ),
        _money(
            F.when(has_base_first, F.col("base_first_net")).otherwise(F.col("run_first_net"))
        ).alias("first_purchase_day_net_usd"),
    ).select(_columns(GOLD_USER_FEATURE_STATE_SCHEMA.fields))


def window_features(snapshots: DataFrame, daily: DataFrame) -> DataFrame:
    """Rolling 7/30/90-day features per (user_id, as_of_date) of ``snapshots``.

    A window of w days ending at as_of_date D covers event dates D-w+1 .. D, so an event
    exactly w days back is out. Active days are days with any purchase or refund; AOV is
    gross USD per order (refunds are reported apart), null without orders. The top
    category is the one with most purchased items in 90 days, ties to the smallest name.
    ``daily`` must cover [min as_of_date - 89, max as_of_date] as known at the version's
    landing date.
    """
    keys = snapshots.select("user_id", "as_of_date")
    pairs = keys.join(daily, "user_id").where(
        (F.col("event_date") <= F.col("as_of_date"))
        & (F.col("event_date") > F.date_sub(F.col("as_of_date"), LONGEST_WINDOW))
    )
    aggregates = []
    for days in FEATURE_WINDOWS:
        inside = F.col("event_date") > F.date_sub(F.col("as_of_date"), days)

        def total(name: str, inside: Column = inside) -> Column:
            return F.sum(F.when(inside, F.col(name)).otherwise(0))

        aggregates += [
            total("orders").cast("long").alias(f"orders_{days}d"),
            total("items").cast("long").alias(f"items_{days}d"),
            _money(total("net_usd")).alias(f"net_usd_{days}d"),
            _money(total("refunds_usd")).alias(f"refunds_usd_{days}d"),
            F.count(F.when(inside, 1)).cast("long").alias(f"active_days_{days}d"),
            _money(total("gross_usd")).alias(f"_gross_usd_{days}d"),
        ]
    windows = pairs.groupBy("user_id", "as_of_date").agg(*aggregates)
    category_totals = (
        pairs.select("user_id", "as_of_date", F.explode("category_items").alias("c"))
        .groupBy("user_id", "as_of_date", F.col("c.category").alias("category"))
        .agg(F.sum("c.items").alias("category_items"))
    )
    most_items_first = Window.partitionBy("user_id", "as_of_date").orderBy(
        F.col("category_items").desc(), F.col("category").asc()
    )
    top_category = (
        category_totals.withColumn("_rank", F.row_number().over(most_items_first))
        .where(F.col("_rank") == 1)
        .select("user_id", "as_of_date", F.col("category").alias("top_category_90d"))
    )
    filled = keys.join(windows, ["user_id", "as_of_date"], "left").join(
        top_category, ["user_id", "as_of_date"], "left"
    )
    zero_money = F.lit(0).cast(MONEY)
    columns = [F.col("user_id"), F.col("as_of_date")]
    for days in FEATURE_WINDOWS:
        orders = F.coalesce(F.col(f"orders_{days}d"), F.lit(0).cast("long"))
        columns += [
            orders.alias(f"orders_{days}d"),
            F.coalesce(F.col(f"items_{days}d"), F.lit(0).cast("long")).alias(f"items_{days}d"),
            F.coalesce(F.col(f"net_usd_{days}d"), zero_money).alias(f"net_usd_{days}d"),
            F.coalesce(F.col(f"refunds_usd_{days}d"), zero_money).alias(f"refunds_usd_{days}d"),
            F.coalesce(F.col(f"active_days_{days}d"), F.lit(0).cast("long")).alias(
                f"active_days_{days}d"
            ),
            F.when(orders > 0, F.col(f"_gross_usd_{days}d").cast("double") / orders).alias(
                f"aov_usd_{days}d"
            ),
        ]
    columns.append(F.col("top_category_90d"))
    return filled.select(columns)


def versions_of(state: DataFrame, windows: DataFrame) -> DataFrame:
    """The wide versions of one run: state columns and window columns per (user, as_of_date).

    ``state_rows`` and ``feature_rows`` cut it into the two tables.
    """
    return state.join(windows, ["user_id", "as_of_date"])


def state_rows(versions: DataFrame) -> DataFrame:
    """gold.user_feature_state rows of ``versions_of`` output (every user with events)."""
    return versions.select(_columns(GOLD_USER_FEATURE_STATE_SCHEMA.fields))


def feature_rows(versions: DataFrame) -> DataFrame:
    """gold.user_features rows of ``versions_of`` output: users with a purchase by then.

    RFM counts purchase days (days with at least one purchase order): frequency = purchase
    days after the first, recency = first to last purchase day, T = first purchase day to
    as_of_date, monetary_value = mean net USD of the repeat purchase days (0 when
    frequency is 0). feature_ts is as_of_date + 1 day at 00:00 UTC: the end of the day
    the snapshot covers.
    """
    frequency = (F.col("purchase_days") - 1).cast("int")
    repeat_net = F.col("purchase_days_net_usd") - F.col("first_purchase_day_net_usd")
    rows = versions.where(F.col("first_purchase_date").isNotNull()).select(
        "*",
        F.datediff("as_of_date", "last_purchase_date").alias("days_since_last_purchase"),
        frequency.alias("frequency"),
        F.datediff("last_purchase_date", "first_purchase_date").alias("recency"),
        F.datediff("as_of_date", "first_purchase_date").alias("T"),
        F.when(frequency > 0, repeat_net.cast("double") / frequency)
        .otherwise(F.lit(0.0))
        .alias("monetary_value"),
        F.date_add("as_of_date", 1).cast("timestamp").alias("feature_ts"),
    )
    return rows.select(_columns(GOLD_USER_FEATURES_SCHEMA.fields))
