"""Time bronze + silver against a plain JSON -> Delta copy of the same landing files.

    PYTHONPATH=. .venv/bin/python bench/ingest.py            # ~1M events over 10 days
    PYTHONPATH=. .venv/bin/python bench/ingest.py --events 5000000 --days 20

One process, one Spark session. The floor is the cheapest thing that could be called an
ingest: ``spark.read.json`` with the landing schema, written as one Delta table. The
product is what the jobs do for the same landing dates: ingest_bronze's build and
publish, then build_silver's build, publish and nothing-lost check (write-audit-publish
staging included; the GX gates are left out unless ``--with-gates``, they are measured
by the gates' own bench). Prints rows/s of both and floor_time / product_time: the share
of the floor's throughput the product keeps (goal >= 0.7).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from devtools.generate_purchases import generate
from spark_jobs.catalog import LANDING_SCHEMA, join_path
from spark_jobs.cli import DateRange
from spark_jobs.config import Settings
from spark_jobs.jobs import build_silver, ingest_bronze
from spark_jobs.quality import wap
from spark_jobs.quality.accounting import check_accounting
from spark_jobs.session import build_spark
from spark_jobs.transforms.fx import DEFAULT_MAX_STALENESS_DAYS

START = dt.date(2026, 3, 2)


def timed(label: str, action: Callable[[], object]) -> float:
    """Seconds ``action`` took; prints them."""
    began = time.perf_counter()
    action()
    seconds = time.perf_counter() - began
    print(f"  {label:<28} {seconds:8.1f} s", flush=True)
    return seconds


def publish(spark, root: str, stage: str, days: DateRange, outputs, gated: bool) -> None:
    """Publish staged outputs, with or without their GX gates."""
    if not gated:
        outputs = [dataclasses.replace(o, gated=False) for o in outputs]
    params = {"start": str(days.start), "end": str(days.end), "stage": stage}
    wap.audit_and_publish(spark, root, stage, days.key, outputs, params)


def main() -> None:
    """Generate (or reuse) the landing files, run floor and product, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in all (1M)")
    parser.add_argument("--days", type=int, default=10, help="landing days (10)")
    parser.add_argument("--root", default=None, help="work folder (default: a temp folder)")
    parser.add_argument("--with-gates", action="store_true", help="run the GX gates too")
    args = parser.parse_args()

    root = args.root or tempfile.mkdtemp(prefix="bench-ingest-")
    days = DateRange(START, START + dt.timedelta(days=args.days - 1))
    spark = build_spark(Settings.from_env(), app_name="bench-ingest")
    per_day = args.events // args.days
    print(f"root {root}: {args.events:,} events over {args.days} landing days")
    summary = generate(
        spark,
        root,
        days.start,
        days.end,
        users=max(1000, per_day // 5),
        seed=1,
        events_per_day=per_day,
        skip_dates=(),
    )
    lines = summary.events_written
    files = sorted(str(p) for p in Path(root, "landing", "purchases").glob("dt=*/*.jsonl*"))

    def floor(target: str) -> None:
        frame = spark.read.schema(LANDING_SCHEMA).json(files)
        frame.write.format("delta").mode("overwrite").save(target)

    def bronze() -> None:
        ingest_bronze.build(spark, root, days)
        publish(spark, root, "bronze", days, ingest_bronze.outputs(days), args.with_gates)

    def silver_build() -> None:
        build_silver.build(spark, root, days, DEFAULT_MAX_STALENESS_DAYS)

    def silver_publish() -> None:
        outputs = build_silver.outputs(root, days)
        publish(spark, root, "silver", days, outputs, args.with_gates)

    def accounting() -> None:
        rows = check_accounting(spark, root, days.start, days.end)
        assert sum(r.bronze for r in rows) == lines

    print("warm-up (one day, not timed)")
    spark.read.schema(LANDING_SCHEMA).json(files[:1]).write.format("delta").mode("overwrite").save(
        join_path(root, "_bench", "warmup")
    )
    print("floor: spark.read.json(landing schema) -> Delta")
    floor_seconds = timed("json -> delta", lambda: floor(join_path(root, "_bench", "floor")))
    print("product: bronze + silver, write-audit-publish" + (" + gates" if args.with_gates else ""))
    steps = {
        "bronze build + publish": bronze,
        "silver build (staging)": silver_build,
        "silver publish": silver_publish,
        "nothing-lost check": accounting,
    }
    product_seconds = sum(timed(label, step) for label, step in steps.items())
    print(f"lines landed:   {lines:,}")
    print(f"floor:          {floor_seconds:8.1f} s  {lines / floor_seconds:12,.0f} rows/s")
    print(f"bronze+silver:  {product_seconds:8.1f} s  {lines / product_seconds:12,.0f} rows/s")
    print(f"ratio floor_time / product_time: {floor_seconds / product_seconds:.2f} (goal >= 0.7)")
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
