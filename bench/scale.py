"""The same 30-day build where queries run locally or on a cluster, on disk or on S3.

    PYTHONPATH=. .venv/bin/python bench/scale.py                 # 30 days x 500 users
    PYTHONPATH=. .venv/bin/python bench/scale.py --days 10 --users 2000 --modes cluster-s3

Four set-ups, one after another in one process, over the same generated landing files:

| mode | where queries run | lakehouse |
| --- | --- | --- |
| local-disk | a Connect server in ``local[2]`` | a folder |
| local-s3 | a Connect server in ``local[2]`` | ``s3a://`` on s3proxy (loopback) |
| cluster-disk | a Connect server on a standalone master + one 2-core worker | a folder |
| cluster-s3 | the same cluster | ``s3a://`` on s3proxy |

Each runs the four stages once over the whole range (``--start`` to ``--end``), each
stage a Connect client as an Airflow task runs it, and is timed per stage. Every mode
must build the tables of local-disk, row for row, or the bench fails. Prints seconds per
stage and the ratio of each mode's total to local-disk's; writes them to
``bench/results/scale.json``. Everything shares this machine's two cores, so the
cluster's figures measure its overhead (executor start, task scheduling, shuffles over
the network stack), not a gain.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devtools import spark_cluster
from devtools.s3_server import S3Server
from spark_jobs import connect_server
from spark_jobs.config import PROJECT_ROOT, Settings
from tests.factories import free_port, upload_landing

STAGES = ("ingest_bronze", "build_silver", "build_gold", "build_features")
MODES = ("local-disk", "local-s3", "cluster-disk", "cluster-s3")
START = dt.date(2026, 1, 1)
BUCKET = "bench"


@contextlib.contextmanager
def connect(
    master: str, store_env: dict[str, str], home: Path, cluster: bool
) -> Iterator[dict[str, str]]:
    """A Connect server on ``master``; yields the client environment of a job."""
    port = free_port()
    token = secrets.token_urlsafe(24)
    settings = Settings.from_env(
        store_env, spark_master=master, shuffle_partitions=4, driver_memory="2g", s3a_jars=True
    )
    env = {**(spark_cluster.server_environment() if cluster else os.environ), **store_env}
    env[connect_server.TOKEN_ENV] = token
    log_path = home / f"connect-{port}.log"
    process = connect_server.start(settings, log_path, port=port, env=env)
    try:
        connect_server.wait_ready(process, log_path, port=port)
        client = {
            **{k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"},
            **store_env,
            "SPARK_REMOTE": connect_server.remote_url(port=port),
            connect_server.TOKEN_ENV: token,
        }
        if cluster:
            client["LAKEHOUSE_SHIP_CODE"] = "true"
        yield client
    finally:
        connect_server.stop(process)


def run_stages(env: dict[str, str], root: str, end: dt.date) -> dict[str, float]:
    """Each stage over the whole range as a Connect client; seconds per stage."""
    seconds = {}
    for stage in STAGES:
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", f"spark_jobs.jobs.{stage}", "--root", root,
             "--start", str(START), "--end", str(end)],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
        )  # fmt: skip
        seconds[stage] = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(
                f"{stage} on {root} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
        print(f"    {stage:<14} {seconds[stage]:7.1f} s", flush=True)
    return seconds


def compare(roots: dict[str, str], server: S3Server) -> list[str]:
    """Differences of every mode's tables against local-disk's (empty: all identical)."""
    from pyspark.sql import SparkSession

    from spark_jobs.session import build_spark
    from tests.factories import differences, published_rows, read_s3_with

    generator = SparkSession.getActiveSession()
    if generator is not None:  # the sample-data generator's session has no S3A jars
        generator.stop()
    spark = build_spark(
        Settings.from_env(spark_master="local[2]", spark_remote="", s3a_jars=True),
        app_name="bench-scale-compare",
    )
    read_s3_with(spark, server, BUCKET)
    # published_rows lists the s3a:// tables through boto3, which reads the environment.
    os.environ.update({k: v for k, v in server.environment("").items() if k != "LAKEHOUSE_ROOT"})
    reference = published_rows(spark, roots["local-disk"])
    problems = []
    for mode, root in roots.items():
        if mode != "local-disk":
            problems += [
                f"{mode}: {d}" for d in differences(published_rows(spark, root), reference)
            ]
    spark.stop()
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (a temp dir)")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if "local-disk" not in modes:
        modes.insert(0, "local-disk")  # the baseline every ratio is taken against
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    end = START + dt.timedelta(days=args.days - 1)
    feed = work / "feed"
    if not (feed / "landing").exists():
        argv = ["--root", str(feed), "--start", str(START), "--end", str(end)]
        # In a process of its own: a JVM started here without the S3A jars could not be
        # given them later, and the comparison at the end reads s3a:// tables.
        generated = subprocess.run(
            [
                sys.executable,
                "-m",
                "devtools.generate_purchases",
                *argv,
                "--users",
                str(args.users),
            ],
            cwd=PROJECT_ROOT,
        )
        assert generated.returncode == 0
    landing = feed / "landing"
    events = sum(1 for p in landing.rglob("*.jsonl") for _ in p.open())
    print(f"{args.days} days, {args.users} users, {events} landed lines; work in {work}")

    server = S3Server(work / "s3", port=free_port())
    server.start()
    server.create_bucket(BUCKET)
    cluster = None
    if any(m.startswith("cluster") for m in modes):
        cluster = spark_cluster.StandaloneCluster(
            work / "cluster",
            master_port=free_port(),
            master_ui_port=free_port(),
            worker_ui_port=free_port(),
            worker_memory="3g",
        )
        cluster.start()
    results: dict[str, dict[str, float]] = {}
    roots: dict[str, str] = {}
    try:
        for mode in modes:
            where, store = mode.split("-")
            if store == "disk":
                root = str(work / mode)
                shutil.copytree(landing, Path(root) / "landing")
                store_env = {"LAKEHOUSE_ROOT": root}
            else:
                root = f"s3a://{BUCKET}/{mode}"
                upload_landing(server, landing.parent, root)
                store_env = server.environment(root)
            master = cluster.master_url if where == "cluster" and cluster else "local[2]"
            print(f"  {mode} ({master}, {root})", flush=True)
            with connect(master, store_env, work, cluster=where == "cluster") as env:
                results[mode] = run_stages(env, root, end)
            roots[mode] = root
        problems = compare(roots, server)
    finally:
        if cluster:
            cluster.stop()
        server.stop()
    if problems:
        raise SystemExit("tables differ from local-disk:\n" + "\n".join(problems))

    base = sum(results["local-disk"].values())
    print(f"\n{'mode':<14}" + "".join(f"{s:>15}" for s in STAGES) + f"{'total':>10}{'ratio':>8}")
    for mode, seconds in results.items():
        total = sum(seconds.values())
        row = "".join(f"{seconds[s]:>14.1f}s" for s in STAGES)
        print(f"{mode:<14}{row}{total:>9.1f}s{total / base:>8.2f}")
    print("every mode built the tables of local-disk, row for row")
    out = PROJECT_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(
        json.dumps(
            {"days": args.days, "users": args.users, "events": events, "seconds": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
