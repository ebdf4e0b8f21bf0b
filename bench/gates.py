"""Benchmark: what each stage's GX gate costs next to the stage's own build.

    PYTHONPATH=. .venv/bin/python bench/gates.py                  # 1M events a day
    PYTHONPATH=. .venv/bin/python bench/gates.py --events-per-day 300000

Generates landing files for three days, runs the real jobs (ingest_bronze, build_silver,
build_gold, build_features) in this process over the first two (warm-up, and the
previous day every row-count band compares with), then times the third day the way
Airflow runs it: each job's ``--step build`` (read, transform, stage), then its
``--step publish``, during which every ``gates.validate_table`` call is timed on its
own. The third day runs ``--repeat`` times (rerunning a day replaces it); each figure
is the median. Prints gate seconds / build seconds per stage; the goal is <= 0.2.

Both times come from the same process, the same data and the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.generate_purchases import generate
from spark_jobs.config import Settings
from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze
from spark_jobs.quality import gates
from spark_jobs.session import build_spark

FIRST_DAY = dt.date(2026, 3, 2)
STAGES: tuple[tuple[str, Callable[[list[str]], int]], ...] = (
    ("bronze", ingest_bronze.main),
    ("silver", build_silver.main),
    ("gold.user_daily", build_gold.main),
    ("gold.user_features", build_features.main),
)


class GateClock:
    """Wraps gates.validate_table: seconds and rows validated since the last reset."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.rows: dict[str, int] = {}
        self._validate = gates.validate_table

    def __call__(self, spark, root, table, staged, params, run_key, suite_name=None):
        started = time.perf_counter()
        result = self._validate(spark, root, table, staged, params, run_key, suite_name)
        self.seconds += time.perf_counter() - started
        self.rows[table.name] = staged.count()  # after the clock: not charged to the gate
        return result

    def reset(self) -> None:
        self.seconds = 0.0
        self.rows = {}


def run_stage(main: Callable[[list[str]], int], root: str, day: dt.date, step: str) -> float:
    """Seconds one in-process job call takes; fails loudly on a non-zero exit."""
    args = ["--root", root, "--start", str(day), "--end", str(day), "--step", step]
    started = time.perf_counter()
    code = main(args)
    if code:
        raise SystemExit(f"{main.__module__} {' '.join(args)} exited {code}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--root", default=None, help="scratch lakehouse (default: a temp dir)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of the last day; medians are shown"
    )
    args = parser.parse_args()
    os.environ.setdefault("LAKEHOUSE_LOG_LEVEL", "WARNING")
    root = args.root or tempfile.mkdtemp(prefix="bench-gates-")
    days = [FIRST_DAY + dt.timedelta(days=n) for n in range(3)]
    spark = build_spark(Settings.from_env(), app_name="bench-gates")
    clock = GateClock()
    gates.validate_table = clock  # wap.audit_and_publish looks it up on the module
    try:
        summary = generate(
            spark,
            root,
            days[0],
            days[-1],
            users=args.users,
            seed=7,
            events_per_day=args.events_per_day,
            skip_dates=(),
        )
        print(f"root {root}: {summary.events_written:,} landed events over {len(days)} days")
        for day in days[:-1]:
            print(f"day {day}: warm-up and previous-day baseline (not timed)")
            for _, job in STAGES:
                run_stage(job, root, day, "all")
        timings: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in STAGES}
        rows: dict[str, dict[str, int]] = {}
        for attempt in range(1, args.repeat + 1):
            print(f"day {days[-1]}: timed run {attempt} of {args.repeat}")
            for name, job in STAGES:
                build_seconds = run_stage(job, root, days[-1], "build")
                clock.reset()
                publish_seconds = run_stage(job, root, days[-1], "publish")
                timings[name].append((build_seconds, clock.seconds, publish_seconds))
                rows[name] = dict(clock.rows)
        results = [
            (name, rows[name], *(median(t[i] for t in timings[name]) for i in range(3)))
            for name, _ in STAGES
        ]
    finally:
        spark.stop()
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\nday {days[-1]}, {args.events_per_day:,} landed events, median of {args.repeat} runs")
    header = f"{'stage':<20}{'rows gated':>22}{'build s':>10}{'gate s':>9}{'publish s':>11}"
    print(header + f"{'gate/build':>12}")
    for name, rows, build_seconds, gate_seconds, publish_seconds in results:
        gated = "+".join(f"{n:,}" for n in rows.values())
        ratio = gate_seconds / build_seconds
        print(
            f"{name:<20}{gated:>22}{build_seconds:>10.1f}{gate_seconds:>9.1f}"
            f"{publish_seconds - gate_seconds:>11.1f}{ratio:>12.2f}"
        )
    total_build = sum(r[2] for r in results)
    total_gate = sum(r[3] for r in results)
    print(f"{'all stages':<20}{'':>22}{total_build:>10.1f}{total_gate:>9.1f}{'':>11}", end="")
    print(f"{total_gate / total_build:>12.2f}")
    print("goal: gate/build <= 0.20")


if __name__ == "__main__":
    main()
