"""The jobs: one module per stage (and the training set, maintenance), run as ``-m``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pyspark.sql import SparkSession

from spark_jobs.cli import DateRange, date_range, resolve_root
from spark_jobs.ops import metrics
from spark_jobs.quality.wap import prepare_gates
from spark_jobs.session import build_spark
from spark_jobs.storage.locking import writer_lock

Steps = Callable[[SparkSession, str, DateRange], int | None]


def run_stage_job(job: str, stage: str, args: argparse.Namespace, steps: Steps) -> int:
    """The common body of a stage job's ``main``: session, lock, metrics, then its steps.

    ``args`` are the parsed ``job_parser`` options (``--root --start --end --run-id
    --step``); ``steps(spark, root, days)`` runs the build and/or publish and may return
    an exit code. The run's ``ops.stage_runs`` row is written before the lock is let go.
    """
    days = date_range(args)
    root = resolve_root(args.root)
    spark = build_spark(app_name=job)
    prepare_gates(args.step)
    with (
        writer_lock(root, f"{job} {days.key}"),
        metrics.recording(spark, root, job, stage, days, args.step),
    ):
        return steps(spark, root, days) or 0
