"""What Spark's code generation costs a small day: the four stages compiled vs interpreted.

    PYTHONPATH=. .venv/bin/python bench/codegen.py                 # 150 customers a day
    PYTHONPATH=. .venv/bin/python bench/codegen.py --users 2000    # the demo's volume

On a small day a stage runs about a hundred short Spark queries, and Spark compiles Java
code (whole-stage code generation, then Janino) for most of them before it reads a row.
``SPARK_CODEGEN=off`` makes the session evaluate expressions interpreted instead
(``spark.sql.codegen.factoryMode=NO_CODEGEN``, whole-stage code generation off): no
compile, slower per row. The test suite runs that way; production keeps Spark's default.

Generates a feed of two landing days, then builds both days through every stage's
``main`` (build, gate, publish) in a new lakehouse per pass, in this process's one
session: a first pass compiled (a cold process, as an Airflow task starts; printed, not
counted), then alternating (codegen, interpreted, interpreted, codegen) so that what is
left of warm-up falls on both alike. Prints the seconds of each pass and the codegen /
interpreted ratio of the medians; the published tables of the two modes must be equal
row for row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("LAKEHOUSE_OPS_METRICS", "off")

from devtools import generate_purchases
from spark_jobs.config import Settings
from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze
from spark_jobs.session import COMPILED_CONF, INTERPRETED_CONF, build_spark
from tests.factories import differences, published_rows

WARM_UP = "codegen"
ORDER = ("codegen", "interpreted", "interpreted", "codegen")
STAGES = (ingest_bronze, build_silver, build_gold, build_features)
FIRST_DAY = dt.date(2026, 3, 1)
DAYS = (FIRST_DAY, FIRST_DAY + dt.timedelta(days=1))


def build_pass(spark, feed: Path, root: Path, mode: str) -> tuple[float, dict[str, float]]:
    """Both days through every stage in a new lakehouse; (seconds, seconds per stage)."""
    for key, value in (INTERPRETED_CONF if mode == "interpreted" else COMPILED_CONF).items():
        spark.conf.set(key, value)
    shutil.copytree(feed / "landing", root / "landing")
    per_stage: dict[str, float] = {}
    started = time.perf_counter()
    for day in DAYS:
        for job in STAGES:
            stage_started = time.perf_counter()
            argv = ["--root", str(root), "--start", str(day), "--end", str(day)]
            if job.main(argv) != 0:
                raise SystemExit(f"{job.__name__} failed for {day} in {mode} mode")
            name = job.__name__.rsplit(".", 1)[-1]
            per_stage[name] = per_stage.get(name, 0.0) + time.perf_counter() - stage_started
    return time.perf_counter() - started, per_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=150)
    args = parser.parse_args()
    os.environ.pop("SPARK_CODEGEN", None)
    spark = build_spark(Settings.from_env(event_log="off"), app_name="bench-codegen")
    with tempfile.TemporaryDirectory(prefix="bench-codegen-") as folder:
        work = Path(folder)
        feed_argv = ["--root", str(work / "feed"), "--start", str(DAYS[0]), "--end", str(DAYS[1])]
        feed_argv += ["--users", str(args.users), "--skip-dates", "none"]
        if generate_purchases.main(feed_argv):
            raise SystemExit("the feed could not be generated")
        seconds: dict[str, list[float]] = {mode: [] for mode in ORDER}
        rows: dict[str, dict[str, list[tuple]]] = {}
        for number, mode in enumerate((WARM_UP, *ORDER)):
            root = work / f"lakehouse-{number}"
            elapsed, per_stage = build_pass(spark, work / "feed", root, mode)
            stages = ", ".join(f"{name} {value:.1f}" for name, value in per_stage.items())
            label = mode if number else f"{mode} (cold)"
            print(f"{label:>16}: {elapsed:6.1f} s  ({stages})", flush=True)
            if number:
                seconds[mode].append(elapsed)
                rows.setdefault(mode, published_rows(spark, str(root)))
            shutil.rmtree(root)
    if problems := differences(rows["interpreted"], rows["codegen"]):
        raise SystemExit(f"the two modes published different rows: {problems[:5]}")
    codegen, interpreted = median(seconds["codegen"]), median(seconds["interpreted"])
    print(
        f"{args.users} customers, 2 days, 4 stages, warm session: codegen {codegen:.1f} s, "
        f"interpreted {interpreted:.1f} s, ratio codegen / interpreted {codegen / interpreted:.2f}"
    )


if __name__ == "__main__":
    main()
