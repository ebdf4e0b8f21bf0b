"""Benchmark the point-in-time join against a Feast-style range join and an equi-join floor.

    PYTHONPATH=. .venv/bin/python bench/pit.py [--users 100000] [--days 60,360]
        [--spine-rows 1000000] [--feast]

One process, one Spark session (local[2], 8g driver). For each snapshot count it writes a
synthetic feature table (users x daily snapshots, Delta) and two 1M-row spines (uniform;
skewed: 10 users hold 20% of the rows) into a temp folder, then times, each written to
Spark's noop sink:
  product  pit.point_in_time_join (the strategy "auto" picks for the spine)
  feast    Feast-style: range join on (user_id, feature_ts <= ts), ROW_NUMBER, join back
  floor    equi-join of the spine to the snapshot of (user_id, day before ts's day)
and prints product/floor (goal <= 1.2) and feast/product (goal >= 4). With --feast it then
stops its session and runs Feast's own Spark offline store (bench/feast_pit.py in
bench/.venv-feast, made by bench/setup_feast.sh) on the smallest data set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.config import Settings
from spark_jobs.session import build_spark
from spark_jobs.transforms import pit

DAY0 = dt.date(2026, 1, 1)
FEATURES = (
    "orders_7d",
    "net_usd_30d",
    "aov_usd_30d",
    "lifetime_orders",
    "recency",
    "monetary_value",
)
HOT_USERS = 10
HOT_SHARE = 0.2
FEAST_PYTHON = Path(__file__).resolve().parent / ".venv-feast" / "bin" / "python"


def write_features(spark: SparkSession, path: str, users: int, days: int) -> None:
    """Daily snapshots of every user, stamped like gold.user_features, ordered by day."""
    day = spark.range(days).select(F.col("id").cast("int").alias("d"))
    user = spark.range(users).select(F.col("id").alias("uid"))
    seed = F.xxhash64("uid", "d")
    feature_ts = F.to_timestamp(F.date_add(F.lit(DAY0), F.col("d") + 1))
    (
        day.crossJoin(user)
        .select(
            F.format_string("u%07d", "uid").alias("user_id"),
            F.date_add(F.lit(DAY0), F.col("d")).alias("as_of_date"),
            feature_ts.alias("feature_ts"),
            feature_ts.alias("available_at"),
            F.pmod(seed, F.lit(10)).alias("orders_7d"),
            (F.pmod(seed, F.lit(100000)) / 100).cast("decimal(18,4)").alias("net_usd_30d"),
            (F.pmod(seed, F.lit(997)) / 7.0).alias("aov_usd_30d"),
            (F.pmod(seed, F.lit(500)) + F.col("d")).alias("lifetime_orders"),
            F.pmod(seed, F.lit(90)).cast("int").alias("recency"),
            (F.pmod(seed, F.lit(5000)) / 3.0).alias("monetary_value"),
        )
        .write.format("delta")
        .mode("overwrite")
        .save(path)
    )


def write_spine(
    spark: SparkSession, path: str, rows: int, users: int, days: int, skewed: bool
) -> None:
    """A spine of (spine_row_id, user_id, ts, label) with ts over the snapshot range."""
    random_user = (F.rand(seed=1) * users).cast("long")
    if skewed:
        hot = (F.rand(seed=2) * HOT_USERS).cast("long")
        random_user = F.when(F.rand(seed=3) < HOT_SHARE, hot).otherwise(random_user)
    start = dt.datetime.combine(DAY0, dt.time(0), tzinfo=dt.UTC).timestamp()
    seconds = F.lit(start + 86400) + F.rand(seed=4) * (days * 86400)
    (
        spark.range(rows)
        .select(
            F.col("id").alias("spine_row_id"),
            F.format_string("u%07d", random_user).alias("user_id"),
            F.timestamp_seconds(F.floor(seconds)).alias("ts"),
            (F.rand(seed=5) < 0.1).cast("int").alias("label"),
        )
        .write.mode("overwrite")
        .parquet(path)
    )


def feast_style(spine: DataFrame, features: DataFrame) -> DataFrame:
    """Feast's Spark offline-store plan: range join, ROW_NUMBER per concatenated key."""
    keyed = spine.withColumn(
        "entity_row_unique_id", F.concat_ws("", F.col("user_id"), F.col("ts").cast("string"))
    )
    candidates = (
        keyed.select("entity_row_unique_id", F.col("user_id").alias("_u"), F.col("ts").alias("_t"))
        .join(features, (F.col("_u") == F.col("user_id")) & (F.col("feature_ts") <= F.col("_t")))
        .withColumn(
            "_rank",
            F.row_number().over(
                Window.partitionBy("entity_row_unique_id").orderBy(
                    F.col("feature_ts").desc(), F.col("available_at").desc()
                )
            ),
        )
        .where(F.col("_rank") == 1)
        .select("entity_row_unique_id", *FEATURES, "feature_ts")
    )
    return keyed.join(candidates, "entity_row_unique_id", "left")


def equi_join_floor(spine: DataFrame, features: DataFrame) -> DataFrame:
    """The floor: each spine row joined to the snapshot of the day before ts's UTC day."""
    keyed = spine.withColumn("_day", F.date_sub(F.to_date("ts"), 1))
    return keyed.join(
        features,
        (keyed["user_id"] == features["user_id"]) & (keyed["_day"] == features["as_of_date"]),
        "left",
    ).select(spine["*"], *[features[c] for c in FEATURES], features["feature_ts"])


def timed(frame: DataFrame) -> float:
    """Seconds to compute ``frame`` completely into the noop sink."""
    started = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def product(
    spine: DataFrame, features: DataFrame, bounds: pit.SpineBounds, strategy: str
) -> DataFrame:
    """The product's join, as build_training_set runs it."""
    return pit.point_in_time_join(
        spine, features, FEATURES, pit.PitOptions(strategy=strategy), bounds
    )


def bounds_of(spine: DataFrame) -> pit.SpineBounds:
    """Row count and ts range of a spine."""
    found = spine.agg(
        F.count(F.lit(1)), F.unix_micros(F.min("ts")), F.unix_micros(F.max("ts"))
    ).first()
    return pit.SpineBounds.from_micros(found[0], found[1], found[2])


def run_feast(features: str, spine: str, product_seconds: float, results: list[dict]) -> None:
    """Time Feast's own get_historical_features in bench/.venv-feast, as a subprocess."""
    if not FEAST_PYTHON.exists():
        print("feast: skipped, run bench/setup_feast.sh first", flush=True)
        return
    script = Path(__file__).resolve().parent / "feast_pit.py"
    done = subprocess.run(
        [str(FEAST_PYTHON), str(script), "--features", features, "--spine", spine],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"feast: failed (exit {done.returncode})\n{done.stderr[-3000:]}", flush=True)
        return
    found = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = found["seconds"] / product_seconds
    print(
        f"feast (real, {found['feast']}): {found['seconds']:.1f}s for {found['rows']} rows; "
        f"feast/product {ratio:.1f}x",
        flush=True,
    )
    results.append({"case": "feast_real", **found, "feast_over_product": ratio})


def main() -> None:
    """Generate the data sets, time the three joins, print figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", default="60,360", help="comma-separated snapshot counts")
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--small-spine-rows", type=int, default=20_000)
    parser.add_argument("--feast", action="store_true", help="also time Feast itself")
    parser.add_argument("--workdir", default=None, help="where to write data (default: temp)")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-pit-"))
    spark = build_spark(
        Settings.from_env(spark_master="local[2]", driver_memory="8g", shuffle_partitions=16),
        app_name="bench-pit",
    )
    results: list[dict] = []
    feast_inputs = None
    try:
        for days in [int(d) for d in args.days.split(",")]:
            features_path = str(workdir / f"features_{days}")
            started = time.perf_counter()
            write_features(spark, features_path, args.users, days)
            print(
                f"\n== {args.users} users x {days} snapshots = {args.users * days:,} rows "
                f"(written in {time.perf_counter() - started:.0f}s)",
                flush=True,
            )
            features = spark.read.format("delta").load(features_path)
            warmed = False
            for skewed in (False, True):
                spine_path = str(workdir / f"spine_{days}_{'skewed' if skewed else 'uniform'}")
                write_spine(spark, spine_path, args.spine_rows, args.users, days, skewed)
                spine = spark.read.parquet(spine_path)
                bounds = bounds_of(spine)
                strategy = pit.choose_strategy(pit.PitOptions(), bounds)
                if not warmed:  # JIT and file caches warm before the first timed join
                    timed(equi_join_floor(spine, features))
                    timed(product(spine, features, bounds, "auto"))
                    warmed = True
                floor = timed(equi_join_floor(spine, features))
                mine = timed(product(spine, features, bounds, "auto"))
                feast = timed(feast_style(spine, features))
                label = "skewed" if skewed else "uniform"
                print(
                    f"{label:8s} spine {bounds.rows:,}: floor {floor:.1f}s, product "
                    f"({strategy}) {mine:.1f}s, feast-style {feast:.1f}s | product/floor "
                    f"{mine / floor:.2f} (goal <= 1.2), feast/product {feast / mine:.1f} "
                    "(goal >= 4)",
                    flush=True,
                )
                results.append(
                    {
                        "days": days,
                        "spine": label,
                        "floor_s": floor,
                        "product_s": mine,
                        "feast_style_s": feast,
                        "strategy": strategy,
                    }
                )
                if feast_inputs is None and not skewed:
                    feast_inputs = (features_path, spine_path, mine)
            small = spark.read.parquet(spine_path).limit(args.small_spine_rows)
            small_path = str(workdir / f"spine_{days}_small")
            small.write.mode("overwrite").parquet(small_path)
            small = spark.read.parquet(small_path)
            small_bounds = bounds_of(small)
            union = timed(product(small, features, small_bounds, "union"))
            broadcast = timed(product(small, features, small_bounds, "broadcast"))
            picked = pit.choose_strategy(pit.PitOptions(), small_bounds)
            print(
                f"small    spine {small_bounds.rows:,}: union {union:.1f}s, broadcast "
                f"{broadcast:.1f}s (auto picks {picked})",
                flush=True,
            )
            results.append(
                {"days": days, "spine": "small", "union_s": union, "broadcast_s": broadcast}
            )
        spark.stop()  # one Spark JVM at a time: Feast starts its own
        if args.feast and feast_inputs:
            run_feast(*feast_inputs, results)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("LAKEHOUSE_LOG_LEVEL", "WARNING")
    main()
