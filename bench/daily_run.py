"""Time purchases_daily through a real Airflow: jobs on a Spark Connect server vs spark-submit.

    .venv/bin/python bench/daily_run.py                      # one 2,000-event day, both modes
    .venv/bin/python bench/daily_run.py --days 30 --modes connect   # a 30-day backfill

For each mode, a fresh lakehouse gets the same generated landing files and a fresh local
Airflow (``devtools.airflow_local``: API server, scheduler, DAG processor, SQLite) runs
the UI's backfill of ``purchases_daily`` over the days, scheduler to success:

- ``connect``: every task is a Spark Connect client of one server that Airflow's start-up
  launched (``make airflow``'s default); the server's start is timed apart, it is paid
  once per Airflow, not per run.
- ``spark-submit``: every task spark-submits its job in a ``local[*]`` JVM of its own.
- ``connect-interpreted``: as ``connect``, with ``SPARK_CODEGEN=off`` for the server and
  the tasks (Spark evaluates expressions without compiling each query; bench/codegen.py).

Prints, per mode, the wall time of the runs (first run queued to last run done), the
time per day, each task's mean duration, and the spark-submit / connect ratio of the
runs. Both lakehouses must end with the same tables (checked, row for row).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

from devtools import generate_purchases
from devtools.airflow_local import AirflowLocal, running
from tests.factories import free_port, patched_env

START = dt.date(2026, 3, 2)
DAG_ID = "purchases_daily"


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_mode(mode: str, landing: Path, work: Path, days: int) -> dict[str, object]:
    """Backfill ``days`` days on a fresh lakehouse and Airflow; returns the timings."""
    root = work / f"lakehouse-{mode}"
    shutil.copytree(landing, root / "landing")
    with patched_env(
        AIRFLOW_CONN_SPARK_DEFAULT=None,
        SPARK_CODEGEN="off" if mode == "connect-interpreted" else None,
    ):
        airflow = AirflowLocal(
            home=work / f"airflow-{mode}",
            lakehouse_root=str(root),
            port=free_port(),
            spark_connect=mode.startswith("connect"),
            connect_port=free_port(),
            dag_refresh_seconds=5,
        )
        started = time.monotonic()
        with running(airflow) as live:
            ready = time.monotonic() - started
            client = live.client()
            client.wait_for_dag(DAG_ID)
            client.set_paused(DAG_ID, False)
            end = START + dt.timedelta(days=days - 1)
            began = time.monotonic()
            client.create_backfill(DAG_ID, str(START), str(end))
            runs: list[dict] = []
            while len(runs) < days or any(r["state"] not in ("success", "failed") for r in runs):
                time.sleep(3)
                runs = [
                    r
                    for r in client.dag_runs(DAG_ID)
                    if START.isoformat() <= r["logical_date"][:10] <= end.isoformat()
                ]
            wall = time.monotonic() - began
            failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
            if failed:
                raise SystemExit(f"{mode}: runs failed: {failed} (logs in {airflow.home})")
            tasks: dict[str, list[float]] = defaultdict(list)
            for run in runs:
                quoted = urllib.parse.quote(run["dag_run_id"], safe="")
                answer = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances")
                for ti in answer["task_instances"]:
                    if ti.get("duration") is not None:
                        tasks[ti["task_id"]].append(float(ti["duration"]))
            first = min(parse_time(r["start_date"]) for r in runs)
            last = max(parse_time(r["end_date"]) for r in runs)
    return {
        "mode": mode,
        "root": str(root),
        "airflow_ready_s": ready,
        "wall_s": wall,
        "runs_s": (last - first).total_seconds(),
        "per_day_s": (last - first).total_seconds() / days,
        "tasks": {task: statistics.mean(values) for task, values in tasks.items()},
    }


def same_tables(roots: list[str]) -> list[str]:
    """Differences between the published tables of the lakehouses (empty: identical)."""
    from spark_jobs.config import Settings
    from spark_jobs.session import build_spark
    from tests.factories import differences, published_rows

    spark = build_spark(Settings.from_env(spark_master="local[2]", spark_remote=""))
    expected = published_rows(spark, roots[0])
    return [d for root in roots[1:] for d in differences(published_rows(spark, root), expected)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--users", type=int, default=2000, help="customers (2,000 ≈ 2,000 events a day)"
    )
    parser.add_argument("--days", type=int, default=1, help="days the backfill builds")
    parser.add_argument("--modes", default="spark-submit,connect", help="comma-separated")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    work = Path(tempfile.mkdtemp(prefix="bench-daily-"))
    feed = work / "feed"
    end = START + dt.timedelta(days=args.days - 1)
    dates = ["--start", str(START), "--end", str(end)]
    generate_purchases.main(
        ["--root", str(feed), *dates, "--users", str(args.users), "--skip-dates", "none"]
    )
    events = sum(len(p.read_text().splitlines()) for p in (feed / "landing").rglob("*.jsonl"))
    print(f"{events} landed events over {args.days} day(s); work folder {work}", flush=True)
    results = []
    for mode in modes:
        print(f"--- {mode} ...", flush=True)
        result = run_mode(mode, feed / "landing", work, args.days)
        results.append(result)
        print(
            f"{mode:13s} airflow ready {result['airflow_ready_s']:6.1f} s | runs "
            f"{result['runs_s']:7.1f} s ({result['per_day_s']:6.1f} s/day) | wall "
            f"{result['wall_s']:7.1f} s",
            flush=True,
        )
        for task, seconds in result["tasks"].items():  # type: ignore[attr-defined]
            print(f"    {task:28s} {seconds:6.1f} s")
    if len(results) == 2:
        base, fast = results
        print(
            f"ratio {base['mode']} / {fast['mode']} (runs): {base['runs_s'] / fast['runs_s']:.2f}"
        )  # type: ignore[operator]
        problems = same_tables([str(r["root"]) for r in results])
        print("tables identical" if not problems else f"TABLES DIFFER: {problems[:5]}")
        if problems:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
