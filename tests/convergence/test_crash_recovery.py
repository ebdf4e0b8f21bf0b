"""A job killed with SIGKILL at any step, then run again, leaves the tables of a clean run.

Each kill is a real job process (``python -m spark_jobs.<job>``) stopped by SIGKILL at a
named fault point (``LAKEHOUSE_FAULT_POINT``, see ``spark_jobs.quality.wap.fault_point``); the
rerun is the same job without the fault. The kills at every step run the job as a Spark
Connect client (what an Airflow task is under ``make airflow``: the process dies, the
server lives on); the cut-short publish kills a job with its own embedded driver, so the
JVM dies with it, as under spark-submit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from spark_jobs.catalog import SILVER_CHANGES, SILVER_PURCHASES, reports_path
from spark_jobs.cli import UserError
from spark_jobs.config import PROJECT_ROOT
from spark_jobs.jobs import build_features, build_gold, build_silver, ingest_bronze, maintenance
from spark_jobs.quality import wap
from spark_jobs.quality.gates import INDEX_FILE
from spark_jobs.quality.wap import FAULT_POINT_ENV
from tests.factories import (
    differences,
    land,
    published_rows,
    purchase,
    run_day,
    run_range,
    run_stage,
)

DAY1, DAY2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
# (job, fault points): a kill at each kind of step, in pipeline order for DAY2. Where a
# job has two points, the run after the first kill is killed at the second (a retry that
# dies too), and only then does a run finish.
KILLS = (
    (ingest_bronze, ("published:bronze.purchases",)),  # rows committed, landing log not
    (
        build_silver,
        (
            "published:silver.purchases",  # between the commits of one publish
            "accounting",  # published, nothing-lost check not done
        ),
    ),
    (build_gold, ("staged:gold.user_daily",)),  # half-way through staging
    (
        build_features,
        (
            "gated:features",  # gate passed, nothing published
            "published:gold.user_features",  # latest versions, not the history
        ),
    ),
)


def land_two_days(root: str) -> None:
    """Day 1, then day 2 with a retried delivery of day 1 and a late event for day 1."""
    first = purchase("e-1", "u1", "2026-03-01T10:00:00Z", quantity=2)
    land(root, DAY1, [first, purchase("e-2", "u2", "2026-03-01T11:00:00Z")])
    land(
        root,
        DAY2,
        [
            first,
            purchase("e-3", "u1", "2026-03-01T23:30:00Z"),
            purchase("e-4", "u3", "2026-03-02T08:00:00Z"),
        ],
    )


def passed_validations(root: str) -> int:
    """Passed gates in the reports index (the plugin's list)."""
    index = Path(reports_path(root), INDEX_FILE)
    if not index.is_file():
        return 0
    return sum(json.loads(line)["success"] for line in index.read_text().splitlines())


def killed_run(job, root: str, day: dt.date, point: str, server=None) -> None:
    """The job in its own process, killed by SIGKILL at ``point``.

    With ``server`` (the ``connect_server`` fixture) the job is a client of that Spark
    Connect server; without, it starts an embedded driver of its own.
    """
    module = job.__name__
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_GATEWAY_PORT"}
    env.update({FAULT_POINT_ENV: point, "PYTHONPATH": str(PROJECT_ROOT)})
    if server is None:
        env["SPARK_DRIVER_MEMORY"] = "1g"
    else:
        env.update(server.client_environment())
    completed = subprocess.run(
        [sys.executable, "-m", module, "--root", root, "--start", str(day)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == -signal.SIGKILL, (
        f"{module} did not die at {point} (exit {completed.returncode}):\n"
        f"{completed.stderr[-2000:]}"
    )


def test_a_kill_at_any_step_then_a_rerun_leaves_the_tables_of_a_clean_run(
    spark, connect_server, tmp_path
) -> None:
    clean = str(tmp_path / "clean")
    land_two_days(clean)
    run_range(clean, DAY1, DAY2)
    expected = published_rows(spark, clean)

    crashed = str(tmp_path / "crashed")
    land_two_days(crashed)
    run_day(crashed, DAY1)
    for job, points in KILLS:
        passed_before = passed_validations(crashed)
        for point in points:
            killed_run(job, crashed, DAY2, point, server=connect_server)
            if point != "accounting":  # silver's check runs after its rows are published
                # A gate that passed for rows never (wholly) published is not listed.
                assert passed_validations(crashed) == passed_before, point
        run_stage(job, crashed, DAY2)

    assert differences(published_rows(spark, crashed), expected) == []


def test_a_publish_cut_short_is_hidden_from_readers_and_refused_by_writers(spark, tmp_path):
    root = str(tmp_path / "lakehouse")
    land_two_days(root)
    run_day(root, DAY1)
    silver_path = SILVER_PURCHASES.path(root)
    day1_rows = sorted(spark.read.format("delta").load(silver_path).collect())

    run_stage(ingest_bronze, root, DAY2)
    killed_run(build_silver, root, DAY2, "published:silver.purchases")

    # silver.purchases holds day 2's rows, silver.changes does not: half a publish.
    assert spark.read.format("delta").load(silver_path).count() > len(day1_rows)
    assert sorted(wap.read_consistent(spark, root, SILVER_PURCHASES).collect()) == day1_rows
    changes_version = wap.latest_version(spark, SILVER_CHANGES.path(root))
    assert wap.consistent_version(spark, root, SILVER_CHANGES) == changes_version
    pinned = wap.consistent_version(spark, root, SILVER_PURCHASES)
    now = dt.datetime.now(dt.UTC)
    [plan] = [
        p
        for p in maintenance.plans(spark, root, now, 168)
        if p.path.endswith("/purchases") and "/silver/" in p.path
    ]
    assert plan.protected_version == pinned  # VACUUM keeps what readers now read
    with pytest.raises(UserError, match=r"stage silver for landing dates 2026-03-02\.\.2026-03-02"):
        build_gold.main(["--root", root, "--start", str(DAY2)])

    run_stage(build_silver, root, DAY2)  # the rerun finishes the publish
    assert wap.unfinished_publishes(spark, root) == []
    assert wap.consistent_version(spark, root, SILVER_PURCHASES) == wap.latest_version(
        spark, silver_path
    )
    run_stage(build_gold, root, DAY2)
