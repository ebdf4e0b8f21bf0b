"""The whole product on one machine, driven through Airflow: ``make demo``.

    python -m devtools.demo --root R --start 2026-01-01 --end 2026-01-30 --users 2000

1. generates sample landing files for [start, end] (``devtools.generate_purchases``);
2. starts the local Airflow (or reuses one already running from the same home);
3. builds [start, end - daily_days] with ``purchases_rebuild`` (one Spark job per stage);
4. builds the last ``--daily-days`` days with an Airflow backfill of ``purchases_daily``,
   one run per day, as the schedule would have;
5. writes a spine from the landing files and builds a training set with ``training_set``;
6. prints where the tables, validation reports, training set, manifest and UI are.

Airflow keeps running afterwards so the UI can be explored;
``python -m devtools.airflow_local stop`` ends it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from devtools.airflow_local import (
    DEFAULT_HOME,
    DEFAULT_PORT,
    AirflowClient,
    AirflowLocal,
    AirflowLocalError,
    login_banner,
)
from include.dag_factory import TABLE_PATHS
from include.delta_log import latest_commit
from spark_jobs.cli import DateRange, parse_date
from spark_jobs.config import PROJECT_ROOT

TRAINING_SET_NAME = "demo_next_week_buyers"
SPINE_USERS = 300
LABEL_HORIZON = dt.timedelta(days=7)


def step(message: str) -> None:
    """Print a progress line with the time, so a long demo shows where it is."""
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def generate_landing(root: str, days: DateRange, users: int) -> None:
    """Write the sample landing files with the generator job (same CLI as by hand)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.generate_purchases",
            "--root",
            root,
            "--start",
            str(days.start),
            "--end",
            str(days.end),
            "--users",
            str(users),
        ],
        check=True,
        cwd=PROJECT_ROOT,
    )


def landing_events(root: str) -> Iterator[dict]:
    """Every well-formed landed event (malformed lines are the pipeline's business)."""
    for path in sorted(Path(root, "landing", "purchases").glob("dt=*/*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    yield event


def write_spine(root: str, days: DateRange) -> Path:
    """A CSV spine (user_id, ts, label): for users seen before noon UTC a week before the
    end (half the range if shorter), did they buy in the following week?"""
    horizon = min(LABEL_HORIZON, dt.timedelta(days=len(days) // 2))
    ts = dt.datetime.combine(days.end - horizon, dt.time(12), tzinfo=dt.UTC)
    buyers, users = set(), set()
    for event in landing_events(root):
        user, when = event.get("user_id"), event.get("event_time")
        if not isinstance(user, str) or not isinstance(when, str):
            continue
        try:
            at = dt.datetime.fromisoformat(when).astimezone(dt.UTC)
        except ValueError:
            continue
        if at <= ts:
            users.add(user)
        elif at <= ts + horizon and event.get("event_type") == "purchase":
            buyers.add(user)
    spine = Path(root, "spines", "demo_spine.csv")
    spine.parent.mkdir(parents=True, exist_ok=True)
    with spine.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "ts", "label"])
        for user in sorted(users)[:SPINE_USERS]:
            writer.writerow([user, ts.strftime("%Y-%m-%dT%H:%M:%SZ"), int(user in buyers)])
    return spine


def run_dag(client: AirflowClient, dag_id: str, conf: dict) -> None:
    """Trigger a run with ``conf`` and wait for it; raises with the failed tasks."""
    client.set_paused(dag_id, False)
    run_id = client.trigger(dag_id, conf)
    step(f"{dag_id}: run {run_id} triggered with {json.dumps(conf)}")
    state = client.wait_for_run(dag_id, run_id, timeout=3 * 3600)
    if state != "success":
        raise AirflowLocalError(
            f"{dag_id} run {run_id} ended {state}; failed tasks: "
            f"{client.failed_tasks(dag_id, run_id)} (see the task logs in the UI)"
        )
    step(f"{dag_id}: success")


def backfill_daily(client: AirflowClient, days: DateRange) -> None:
    """Build ``days`` with a backfill of purchases_daily and wait for every run."""
    client.set_paused("purchases_daily", False)
    # "completed": a second demo run rebuilds these days too instead of finding no work.
    backfill = client.create_backfill(
        "purchases_daily", str(days.start), str(days.end), reprocess_behavior="completed"
    )
    step(f"purchases_daily: backfill {backfill['id']} over {days.start}..{days.end} created")
    wanted = {str(day) for day in days.days()}
    deadline = time.monotonic() + 3 * 3600
    while time.monotonic() < deadline:
        runs = [
            r
            for r in client.dag_runs("purchases_daily")
            if r["run_type"] == "backfill" and (r.get("logical_date") or "")[:10] in wanted
        ]
        states = {r["logical_date"][:10]: r["state"] for r in runs}
        if len(states) == len(wanted) and all(s in ("success", "failed") for s in states.values()):
            break
        time.sleep(5)
    # Unpausing made the scheduler start today's run, which would wait for landing files
    # the demo does not have; pausing leaves the schedule as it was.
    client.set_paused("purchases_daily", True)
    failed = sorted(d for d, s in states.items() if s != "success")
    if failed:
        raise AirflowLocalError(f"purchases_daily backfill runs failed for {failed}")
    step(f"purchases_daily: {len(states)} backfill run(s) succeeded")


def summary(root: str, airflow: AirflowLocal) -> str:
    """Where everything is, for people."""
    lines = ["", "Lakehouse tables (Delta):"]
    for name, relative in TABLE_PATHS.items():
        commit = latest_commit(f"{root}/{relative}")
        version = "missing" if commit is None else f"version {commit.version}"
        lines.append(f"  {name:30} {root}/{relative}  ({version})")
    training = Path(root, "training", TRAINING_SET_NAME)
    lines += [
        f"Validation reports:  {root}/_reports  (UI: Browse > Validation reports)",
        f"Training set:        {training}",
        f"Manifest:            {training / '_manifest.json'}",
        login_banner(airflow),
        "Stop Airflow with:   python -m devtools.airflow_local stop",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__)
    parser.add_argument("--root", required=True, help="lakehouse root (a local folder)")
    parser.add_argument("--start", type=parse_date, required=True)
    parser.add_argument("--end", type=parse_date, required=True)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument(
        "--daily-days",
        type=int,
        default=1,
        help="last days built by a purchases_daily backfill instead of the rebuild (1)",
    )
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="AIRFLOW_HOME")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    args = _parser().parse_args(argv)
    days = DateRange(args.start, args.end)
    if not 0 <= args.daily_days < len(days):
        print(f"error: --daily-days must be between 0 and {len(days) - 1}", file=sys.stderr)
        return 2
    root = str(Path(args.root).expanduser().resolve())
    airflow = AirflowLocal(home=args.home.resolve(), lakehouse_root=root, port=args.port)

    step(f"generating {len(days)} days of landing files for {args.users} users in {root}")
    generate_landing(root, days, args.users)

    try:
        airflow.wait_until_healthy(timeout=5)
        step(f"reusing the Airflow already running at {airflow.base_url}")
    except AirflowLocalError:
        step(f"starting Airflow in {airflow.home}")
        airflow.start()
        airflow.wait_until_healthy()
    client = airflow.client()
    for dag_id in ("purchases_rebuild", "purchases_daily", "training_set"):
        client.wait_for_dag(dag_id)

    rebuild_end = days.end - dt.timedelta(days=args.daily_days)
    run_dag(client, "purchases_rebuild", {"start": str(days.start), "end": str(rebuild_end)})
    if args.daily_days:
        backfill_daily(client, DateRange(rebuild_end + dt.timedelta(days=1), days.end))

    spine = write_spine(root, days)
    step(f"spine written to {spine}")
    run_dag(
        client,
        "training_set",
        {
            "spine": str(spine),
            "name": TRAINING_SET_NAME,
            "mode": "as_known",
            "ttl_days": 30,
            "features": [],
        },
    )
    print(summary(root, airflow))
    return 0


if __name__ == "__main__":
    sys.exit(main())
