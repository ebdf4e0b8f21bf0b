"""Benchmark: what a gate costs next to the stage it guards.

For silver.purchases, gold.user_daily and gold.user_features, builds a synthetic day of
realistic size (transform + staging write, as a stage's build step does), then runs the
table's gate on the staged rows (read back from staging, as the publish step does). Prints
gate_time / build_time per table; the goal is <= 0.2.

    PYTHONPATH=. .venv/bin/python bench/gates.py --rows 1000000

Both times are measured in the same process, on the same data, in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from spark_jobs import gates
from spark_jobs.session import build_spark
from spark_jobs.tables import (
    FEATURE_WINDOWS,
    GOLD_USER_DAILY,
    GOLD_USER_FEATURES,
    MONEY,
    SILVER_PURCHASES,
    Table,
)
from spark_jobs.wap import read_staged, stage_outputs

DAY = dt.date(2026, 3, 2)
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD")


def silver_day(spark: SparkSession, rows: int, users: int) -> DataFrame:
    """A landing day's silver rows: typed, converted with a rate table, deduplicated."""
    rates = spark.createDataFrame(
        [(c, 1.0 + i / 10) for i, c in enumerate(CURRENCIES)], "currency string, rate double"
    )
    n = F.col("id")
    raw = spark.range(rows).select(
        F.concat(F.lit("e"), n.cast("string")).alias("event_id"),
        F.concat(F.lit("o"), (n / 2).cast("long").cast("string")).alias("order_id"),
        F.concat(F.lit("u"), (F.hash(n) % users).cast("string")).alias("user_id"),
        F.when(n % 20 == 0, "refund").otherwise("purchase").alias("event_type"),
        (F.lit(dt.datetime(2026, 3, 2, tzinfo=dt.UTC)) + F.make_interval(secs=n % 86400)).alias(
            "event_time"
        ),
        F.lit(60).alias("event_utc_offset_minutes"),
        F.concat(F.lit("sku-"), (n % 5000).cast("string")).alias("sku"),
        F.when(n % 7 == 0, None)
        .otherwise(F.concat(F.lit("c"), (n % 12).cast("string")))
        .alias("category"),
        (n % 4 + 1).cast("int").alias("quantity"),
        ((n % 9000) / 100 + 1).cast(MONEY).alias("unit_price"),
        F.element_at(F.array(*[F.lit(c) for c in CURRENCIES]), (n % 5 + 1).cast("int")).alias(
            "currency"
        ),
    )
    sign = F.when(F.col("event_type") == "refund", -1).otherwise(1)
    typed = raw.join(F.broadcast(rates), "currency").select(
        *[c for c in raw.columns if c != "currency"],
        "currency",
        F.col("rate").cast("decimal(18,8)").alias("fx_rate_to_usd"),
        F.lit(DAY).alias("fx_rate_date"),
        F.to_date("event_time").alias("event_date"),
        (sign * F.col("quantity") * F.col("unit_price") * F.col("rate"))
        .cast(MONEY)
        .alias("amount_usd"),
        F.lit(f"landing/purchases/dt={DAY}/part-0.jsonl").alias("_source_file"),
        F.lit(DAY).alias("_landing_date"),
        F.lit(dt.datetime(2026, 3, 3, tzinfo=dt.UTC)).alias("_ingested_at"),
    )
    return typed.dropDuplicates(["event_id"])


def gold_day(silver: DataFrame) -> DataFrame:
    """User-day aggregates of a silver day, as gold.user_daily holds them."""
    purchase = F.col("event_type") == "purchase"
    return (
        silver.groupBy("user_id", "event_date")
        .agg(
            F.countDistinct(F.when(purchase, F.col("order_id"))).alias("orders"),
            F.sum(F.when(purchase, F.col("quantity")).otherwise(0)).cast("long").alias("items"),
            F.sum(F.when(purchase, F.col("amount_usd")).otherwise(0))
            .cast(MONEY)
            .alias("gross_usd"),
            F.sum(F.when(~purchase, -F.col("amount_usd")).otherwise(0))
            .cast(MONEY)
            .alias("refunds_usd"),
            F.count(F.when(~purchase, 1)).alias("refund_count"),
            F.countDistinct("category").alias("distinct_categories"),
            F.min("event_time").alias("first_event_time"),
            F.max("event_time").alias("last_event_time"),
        )
        .withColumn("net_usd", (F.col("gross_usd") - F.col("refunds_usd")).cast(MONEY))
    )


def features_day(gold: DataFrame) -> DataFrame:
    """Snapshot rows of the day for every user of ``gold``, with consistent window values."""
    base = gold.where(F.col("orders") > 0).select(
        "user_id",
        F.col("event_date").alias("as_of_date"),
        "orders",
        "items",
        "net_usd",
        "refunds_usd",
    )
    columns = [F.col("user_id"), F.col("as_of_date")]
    for days in FEATURE_WINDOWS:
        columns += [
            F.col("orders").alias(f"orders_{days}d"),
            F.col("items").alias(f"items_{days}d"),
            F.col("net_usd").alias(f"net_usd_{days}d"),
            F.col("refunds_usd").alias(f"refunds_usd_{days}d"),
            F.lit(1).cast("long").alias(f"active_days_{days}d"),
            (F.col("net_usd") / F.col("orders")).cast("double").alias(f"aov_usd_{days}d"),
        ]
    top = Window.partitionBy("user_id").orderBy("as_of_date")
    return base.select(
        *columns,
        F.col("as_of_date").alias("first_purchase_date"),
        F.col("as_of_date").alias("last_purchase_date"),
        F.col("orders").alias("lifetime_orders"),
        F.greatest(F.col("net_usd"), F.lit(0)).cast(MONEY).alias("lifetime_net_usd"),
        F.lit(0).alias("days_since_last_purchase"),
        F.lit("c1").alias("top_category_90d"),
        (F.row_number().over(top) - 1).cast("int").alias("frequency"),
        F.lit(0).alias("recency"),
        F.lit(0).alias("T"),
        F.lit(0.0).alias("monetary_value"),
        F.date_add("as_of_date", 1).cast("timestamp").alias("feature_ts"),
        F.date_add("as_of_date", 1).cast("timestamp").alias("available_at"),
    )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(
    spark: SparkSession, root: str, table: Table, build: DataFrame
) -> tuple[int, float, float]:
    """(rows, build seconds, gate seconds) of one table."""
    run_key = f"{DAY}_{DAY}"
    build_time = timed(lambda: stage_outputs(spark, root, run_key, {table: build}))
    staged = read_staged(spark, root, table, run_key)
    rows = staged.count()
    outcome: list[gates.GateResult] = []
    params = {"start": str(DAY), "end": str(DAY)}
    gate_time = timed(
        lambda: outcome.append(gates.validate_table(spark, root, table, staged, params, run_key))
    )
    if not outcome[0].passed:
        print(outcome[0].summary())
    return rows, build_time, gate_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="silver rows of the day")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--root", default=None, help="scratch lakehouse (default: a temp dir)")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="bench-gates-")
    spark = build_spark(app_name="bench-gates")
    # Warm up the JVM, Delta and GX once, so the first table is not charged for them.
    measure(spark, root + "/warmup", GOLD_USER_DAILY, gold_day(silver_day(spark, 1000, 100)))

    results = []
    silver = silver_day(spark, args.rows, args.users)
    results.append((SILVER_PURCHASES, *measure(spark, root, SILVER_PURCHASES, silver)))
    staged_silver = read_staged(spark, root, SILVER_PURCHASES, f"{DAY}_{DAY}")
    gold = gold_day(staged_silver)
    results.append((GOLD_USER_DAILY, *measure(spark, root, GOLD_USER_DAILY, gold)))
    staged_gold = read_staged(spark, root, GOLD_USER_DAILY, f"{DAY}_{DAY}")
    features = features_day(staged_gold)
    results.append((GOLD_USER_FEATURES, *measure(spark, root, GOLD_USER_FEATURES, features)))

    print(f"\n{'table':<22}{'rows':>10}{'build s':>10}{'gate s':>10}{'gate/build':>12}")
    for table, rows, build_time, gate_time in results:
        ratio = gate_time / build_time
        print(f"{table.name:<22}{rows:>10}{build_time:>10.1f}{gate_time:>10.1f}{ratio:>12.2f}")
    print("goal: gate/build <= 0.20")
    spark.stop()
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
