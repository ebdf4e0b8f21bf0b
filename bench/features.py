"""Benchmark build_features: flat per-day cost, and a backfill in one job vs daily jobs.

    PYTHONPATH=. .venv/bin/python bench/features.py [--users 5000] [--days 365]
        [--backfill-days 90] [--process-days 3] [--repeat 3]

One process, one Spark session (local[*]). It writes a synthetic silver history
(users x days: about 15% of users buy on a day, 1-3 lines an order, 5% refund lines,
5% of rows landing 1-3 days late) straight into silver.purchases / silver.changes of a
temp lakehouse, builds gold over every landing date, then the features of days 1..29
in one backfill, and times (median of --repeat; a rerun of a built day does the same
work as its first run, since runs are idempotent):

  day_30    build_features --start day30 (in-process call: build, gate, publish)
  day_365   the same for the last day, after days 1..364 are built
  backfill  the last --backfill-days days in one build_features call (in-process)
  one_day   the same days as one-day in-process calls (no JVM start), extrapolated
  process   --process-days of them as separate `python -m spark_jobs.jobs.build_features`
            processes (JVM start included, run after this session stops), extrapolated

and prints day_365/day_30 (goal <= 1.2) and backfill/(backfill-days x process) (goal
<= 0.25), with backfill/(backfill-days x one_day) beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from spark_jobs import build_gold  # noqa: E402
from spark_jobs.catalog import (  # noqa: E402
    MONEY,
    SILVER_CHANGES,
    SILVER_CHANGES_SCHEMA,
    SILVER_PURCHASES,
    SILVER_PURCHASES_SCHEMA,
)
from spark_jobs.config import Settings  # noqa: E402
from spark_jobs.jobs import build_features  # noqa: E402
from spark_jobs.session import build_spark  # noqa: E402

FIRST_DAY = dt.date(2025, 1, 1)


def synthetic_silver(spark: SparkSession, users: int, days: int) -> DataFrame:
    """Silver rows for ``users`` x ``days``, from hashes of (user, day, line): repeatable."""
    grid = (
        spark.range(users)
        .withColumnRenamed("id", "user")
        .crossJoin(spark.range(days).withColumnRenamed("id", "day"))
    )

    def unit(*cols: object) -> F.Column:  # a repeatable number in [0, 1)
        return (F.abs(F.xxhash64(*cols)) % 1_000_000) / 1_000_000

    buyers = grid.where(unit("user", "day", F.lit("buys")) < 0.15)
    lines = buyers.withColumn(
        "line",
        F.explode(F.sequence(F.lit(1), (unit("user", "day", F.lit("n")) * 3).cast("int") + 1)),
    )
    event_date = F.date_add(F.lit(FIRST_DAY), F.col("day").cast("int"))
    lateness = F.when(
        unit("user", "day", F.lit("late")) < 0.05, (unit("user", "day") * 3).cast("int") + 1
    ).otherwise(0)
    is_refund = unit("user", "day", "line", F.lit("refund")) < 0.05
    quantity = (unit("user", "day", "line", F.lit("q")) * 3).cast("int") + 1
    price = (F.floor(unit("user", "day", "line", F.lit("p")) * 9000) / 100 + 1).cast(MONEY)
    amount = (quantity * price).cast(MONEY)
    categories = F.array(*[F.lit(c) for c in ("art", "books", "games", "toys", "garden")])
    landing = F.date_add(event_date, lateness)
    rows = lines.select(
        F.concat_ws("-", "user", "day", "line").alias("event_id"),
        F.concat_ws("-", F.lit("o"), "user", "day").alias("order_id"),
        F.format_string("user%05d", "user").alias("user_id"),
        F.when(is_refund, "refund").otherwise("purchase").alias("event_type"),
        (
            event_date.cast("timestamp")
            + F.make_interval(hours=(unit("user", "day") * 24).cast("int"))
        ).alias("event_time"),
        event_date.alias("event_date"),
        F.lit(60).alias("event_utc_offset_minutes"),
        F.concat(F.lit("sku-"), "line").alias("sku"),
        F.element_at(categories, (unit("user", "line") * 5).cast("int") + 1).alias("category"),
        quantity.alias("quantity"),
        price.alias("unit_price"),
        F.lit("USD").alias("currency"),
        F.lit(1).cast("decimal(18,8)").alias("fx_rate_to_usd"),
        event_date.alias("fx_rate_date"),
        F.when(is_refund, -amount).otherwise(amount).cast(MONEY).alias("amount_usd"),
        F.lit("bench").alias("_source_file"),
        landing.alias("_landing_date"),
        F.date_add(landing, 1).cast("timestamp").alias("_ingested_at"),
    )
    return spark.createDataFrame(rows.rdd, SILVER_PURCHASES_SCHEMA)


def write_silver(spark: SparkSession, root: str, users: int, days: int) -> int:
    """Write silver.purchases and silver.changes; returns the number of silver rows."""
    silver = synthetic_silver(spark, users, days)
    silver.write.format("delta").partitionBy("event_date").save(SILVER_PURCHASES.path(root))
    silver = spark.read.format("delta").load(SILVER_PURCHASES.path(root))
    changes = silver.groupBy("_landing_date", "event_date", "user_id").agg(
        F.count("*").alias("rows")
    )
    (
        spark.createDataFrame(changes.rdd, SILVER_CHANGES_SCHEMA)
        .write.format("delta")
        .partitionBy("_landing_date")
        .save(SILVER_CHANGES.path(root))
    )
    return silver.count()


def run(module: object, root: str, start: dt.date, end: dt.date | None = None) -> float:
    """Seconds one in-process call of a job's main takes."""
    began = time.perf_counter()
    module.main(["--root", root, "--start", str(start), "--end", str(end or start)])  # type: ignore[attr-defined]
    return time.perf_counter() - began


def median_run(module: object, root: str, day: dt.date, repeat: int) -> float:
    return statistics.median(run(module, root, day) for _ in range(repeat))


def process_run(root: str, day: dt.date) -> float:
    """Seconds of one `python -m spark_jobs.jobs.build_features` process for one day."""
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "spark_jobs.jobs.build_features",
            *("--root", root, "--start", str(day)),
        ],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT), "LAKEHOUSE_LOG_LEVEL": "WARNING"},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--backfill-days", type=int, default=90)
    parser.add_argument("--process-days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temp lakehouse")
    args = parser.parse_args()
    os.environ.setdefault("LAKEHOUSE_LOG_LEVEL", "WARNING")
    root = tempfile.mkdtemp(prefix="bench-features-")
    day = {n: FIRST_DAY + dt.timedelta(days=n - 1) for n in (1, 29, 30, args.days - 1, args.days)}
    spark = build_spark(Settings.from_env(), app_name="bench-features")
    results: dict[str, object] = {"users": args.users, "days": args.days}
    try:
        began = time.perf_counter()
        results["silver_rows"] = write_silver(spark, root, args.users, args.days)
        run(build_gold, root, day[1], day[args.days])
        run(build_features, root, day[1], day[29])
        results["day_30_s"] = median_run(build_features, root, day[30], args.repeat)
        built = time.perf_counter()
        run(build_features, root, day[30] + dt.timedelta(days=1), day[args.days - 1])
        results["history_build_s"] = round(time.perf_counter() - began, 1)
        results["history_days_per_s"] = round((args.days - 31) / (time.perf_counter() - built), 2)
        results["day_365_s"] = median_run(build_features, root, day[args.days], args.repeat)
        first = day[args.days] - dt.timedelta(days=args.backfill_days - 1)
        results["backfill_s"] = run(build_features, root, first, day[args.days])
        sample = [first + dt.timedelta(days=i) for i in range(args.process_days)]
        results["one_day_in_process_s"] = statistics.mean(
            run(build_features, root, d) for d in sample
        )
        spark.stop()
        results["one_day_process_s"] = statistics.mean(process_run(root, d) for d in sample)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    n = args.backfill_days
    results["day_365_over_day_30"] = results["day_365_s"] / results["day_30_s"]  # type: ignore[operator]
    results["backfill_over_daily_processes"] = results["backfill_s"] / (  # type: ignore[operator]
        n * results["one_day_process_s"]  # type: ignore[operator]
    )
    results["backfill_over_daily_in_process"] = results["backfill_s"] / (  # type: ignore[operator]
        n * results["one_day_in_process_s"]  # type: ignore[operator]
    )
    print(
        json.dumps(
            {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=2
        )
    )
    print(
        f"day {args.days} / day 30: {results['day_365_over_day_30']:.2f} (goal <= 1.2); "
        f"{n}-day backfill / {n} one-day processes: "
        f"{results['backfill_over_daily_processes']:.3f} (goal <= 0.25; "
        f"vs in-process one-day calls: {results['backfill_over_daily_in_process']:.3f})"
    )


if __name__ == "__main__":
    main()
