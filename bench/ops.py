"""What run metrics cost: one landing day through every stage, ops.stage_runs on vs off.

    PYTHONPATH=. .venv/bin/python bench/ops.py                       # 1,000,000 events
    PYTHONPATH=. .venv/bin/python bench/ops.py --events 100000 --users 20000

One day of generated landing files (in a process of its own), then the four stages run
in this process's Spark session over a fresh copy of it, four times in the order off,
on, on, off, so the session's warm-up falls on both sides alike. "on" is the default
(``LAKEHOUSE_OPS_METRICS`` unset): each stage measures its output's shape in one extra
Spark job and appends one row to ops.stage_runs; "off" records nothing.

Prints seconds per stage and pass, the mean of each side, and the on / off ratio of the
day's total. The issue's budget is 3 %. Both sides must publish the same tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spark_jobs.config import PROJECT_ROOT

DAY = dt.date(2026, 3, 2)
ORDER = ("off", "on", "on", "off")


def run_pass(landing: Path, root: Path, mode: str) -> dict[str, float]:
    """Every stage of DAY on a fresh copy of the landing files; seconds per stage."""
    from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze

    shutil.copytree(landing, root / "landing")
    if mode == "off":
        os.environ["LAKEHOUSE_OPS_METRICS"] = "off"
    else:
        os.environ.pop("LAKEHOUSE_OPS_METRICS", None)
    seconds = {}
    for job in (ingest_bronze, build_silver, build_gold, build_features):
        began = time.perf_counter()
        assert job.main(["--root", str(root), "--start", str(DAY)]) == 0, job.__name__
        seconds[job.__name__.rsplit(".", 1)[-1]] = time.perf_counter() - began
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ops-"))
    feed = work / "feed"
    if not (feed / "landing").exists():
        began = time.perf_counter()
        generated = subprocess.run(
            [sys.executable, "-m", "devtools.generate_purchases", "--root", str(feed),
             "--start", str(DAY), "--users", str(args.users),
             "--events-per-day", str(args.events), "--files-per-day", "8"],
            cwd=PROJECT_ROOT,
        )  # fmt: skip
        assert generated.returncode == 0
        print(f"generated in {time.perf_counter() - began:.0f} s", flush=True)
    landed = sum(1 for p in (feed / "landing").rglob("*.jsonl") for _ in p.open())
    print(f"one day, {landed:,} landed lines; work in {work}", flush=True)

    from spark_jobs.session import build_spark

    build_spark(app_name="bench-ops")  # started once, before any pass is timed
    passes: list[tuple[str, dict[str, float]]] = []
    for number, mode in enumerate(ORDER):
        seconds = run_pass(feed / "landing", work / f"pass-{number}-{mode}", mode)
        passes.append((mode, seconds))
        print(f"  pass {number} metrics {mode:<3} " + "  ".join(
            f"{stage} {s:6.1f}" for stage, s in seconds.items()
        ) + f"  total {sum(seconds.values()):6.1f} s", flush=True)  # fmt: skip
    compare(work, passes)

    totals = {m: [sum(s.values()) for mode, s in passes if mode == m] for m in ("off", "on")}
    mean = {m: sum(v) / len(v) for m, v in totals.items()}
    print(f"\nmean day: metrics off {mean['off']:.1f} s, on {mean['on']:.1f} s, "
          f"ratio on/off {mean['on'] / mean['off']:.3f} (budget 1.03)")  # fmt: skip
    rows = work / "pass-1-on" / "ops" / "stage_runs"
    print(f"ops.stage_runs rows of one 'on' pass: {rows} ({len(list(rows.glob('*.parquet')))} "
          "files)")  # fmt: skip


def compare(work: Path, passes: list[tuple[str, dict[str, float]]]) -> None:
    """Every pass published the same tables as the first."""
    from pyspark.sql import SparkSession

    from tests.factories import differences, published_rows

    spark = SparkSession.getActiveSession()
    assert spark is not None
    roots = [work / f"pass-{n}-{mode}" for n, (mode, _) in enumerate(passes)]
    reference = published_rows(spark, str(roots[0]))
    for root in roots[1:]:
        problems = differences(published_rows(spark, str(root)), reference)
        if problems:
            raise SystemExit(f"{root.name} differs from {roots[0].name}:\n" + "\n".join(problems))
    print("every pass published the same tables", flush=True)


if __name__ == "__main__":
    main()
