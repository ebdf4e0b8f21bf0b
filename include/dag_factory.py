"""Building blocks for the lakehouse DAGs: default arguments, table Assets, Spark stage tasks.

Imported when Airflow parses ``dags/``, so it stays light: no pyspark, no Great
Expectations, nothing that touches the lakehouse. The Spark work happens in job
processes started by the operators in ``include.operators``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Asset

# airflow.sdk re-exports these lazily, which mypy cannot follow: import where they live.
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from include.alerts import deadline_hours, on_missed_deadline, on_stage_failure
from include.operators import LakehouseSparkSubmitOperator
from spark_jobs.cli import parse_date
from spark_jobs.config import Settings
from spark_jobs.names import UnsafeNameError, validate_name

OWNER = "data-platform"

# Relative locations of the tables people read (internal "_" tables have no Asset), as
# in spark_jobs.catalog, which imports pyspark and so cannot be read at parse time;
# tests/dags asserts the two agree.
TABLE_PATHS = {
    "bronze.purchases": "bronze/purchases",
    "silver.purchases": "silver/purchases",
    "silver.quarantine": "silver/quarantine",
    "gold.user_daily": "gold/user_daily",
    "gold.user_features": "gold/user_features",
    "gold.user_features_history": "gold/user_features_history",
}


@dataclass(frozen=True)
class Stage:
    """One write-audit-publish stage of the purchases pipeline."""

    job: str  # module in spark_jobs/
    produces: str  # task id of the stage's task
    tables: tuple[str, ...]  # tables people read that its publish step commits
    doc: str


PURCHASE_STAGES = (
    Stage(
        "ingest_bronze",
        "bronze_purchases",
        ("bronze.purchases",),
        "Every landed line of the landing date, as landed, with its source file.",
    ),
    Stage(
        "build_silver",
        "silver_purchases",
        ("silver.purchases", "silver.quarantine"),
        "Typed, deduplicated purchases in USD; rejected records go to quarantine with a reason.",
    ),
    Stage(
        "build_gold",
        "gold_user_daily",
        ("gold.user_daily",),
        "One row per user and event day, recomputed for the days the landing date touched.",
    ),
    Stage(
        "build_features",
        "gold_user_features",
        ("gold.user_features", "gold.user_features_history"),
        "Rolling 7/30/90-day and lifetime features per user, stamped feature_ts and available_at.",
    ),
)

SPARK_EXECUTION_TIMEOUT = dt.timedelta(hours=2)
RUN_ID = "{{ run_id }}"
# Every task that writes lakehouse tables takes a slot of this pool (one slot, made by
# `python -m devtools.airflow_local start` and documented in docs/AIRFLOW.md), so DAGs,
# backfills and maintenance write one at a time.
WRITER_POOL = "lakehouse_writers"


def lakehouse_root() -> str:
    """The lakehouse root the DAGs work on: ``$LAKEHOUSE_ROOT`` as an absolute path or URI."""
    root = Settings.from_env().lakehouse_root
    if "://" in root:
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())


def table_uri(root: str, relative_path: str) -> str:
    """URI of a table for Airflow Assets: ``file://`` for a folder, ``s3://`` on S3.

    Airflow normalises ``s3://`` URIs (amazon provider); ``s3a://`` is Hadoop's name
    for the same objects.
    """
    if root.startswith(("s3a://", "s3://")):
        return "s3://" + root.split("://", 1)[1].rstrip("/") + "/" + relative_path
    return Path(root, relative_path).as_uri()


def table_asset(name: str, root: str | None = None) -> Asset:
    """The Asset of a published table, named like the table (``gold.user_daily``)."""
    root = root or lakehouse_root()
    return Asset(name=name, uri=table_uri(root, TABLE_PATHS[name]), group="lakehouse")


def default_args(retries: int = 2) -> dict[str, object]:
    """Arguments every lakehouse task shares: owner, retries, timeouts."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=20),
        "execution_timeout": SPARK_EXECUTION_TIMEOUT,
    }


def dag_start_date() -> pendulum.DateTime:
    """First logical date the DAGs know: ``$LAKEHOUSE_START_DATE`` or 2024-01-01, at 00:00 UTC.

    Early enough that any real backfill range is inside it; catchup is off, so it
    does not create runs by itself. Read like the jobs' ``--start`` (YYYY-MM-DD).
    """
    day = parse_date(os.environ.get("LAKEHOUSE_START_DATE", "2024-01-01"))
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def spark_job(
    task_id: str,
    job: str,
    args: Sequence[str],
    doc_md: str,
    root: str,
    outlets: Sequence[Asset] = (),
    **kwargs: Any,  # passed on to LakehouseSparkSubmitOperator
) -> LakehouseSparkSubmitOperator:
    """A task that spark-submits ``spark_jobs/jobs/<job>.py --root <root> <args>``."""
    kwargs.setdefault("pool", WRITER_POOL)
    return LakehouseSparkSubmitOperator(
        task_id=task_id,
        job=job,
        lakehouse_root=root,
        job_args=list(args),
        outlets=list(outlets),
        doc_md=doc_md,
        **kwargs,
    )


def stage_task(
    stage: Stage,
    start: str,
    end: str,
    root: str,
    extra_args: Sequence[str] = (),
) -> LakehouseSparkSubmitOperator:
    """The one task of a stage (``<table>``): build, Great Expectations gate, publish.

    ``start``/``end`` are templates (``{{ ds }}`` for a daily run): a task always works
    on its run's logical dates, never on "latest". The three steps share one process:
    one start, one Great Expectations import, the staged rows validated where they were
    built. The gate stays visible: its summary line in the task log, a failed task (no
    retry) when it rejects the rows, and the report on the Asset events when it passes.
    """
    # Staged rows are keyed by the run's id: another run of the same dates (a rebuild
    # beside the daily run, a retry) stages its own.
    args = ["--start", start, "--end", end, "--run-id", RUN_ID, *extra_args, "--step", "all"]
    tables = ", ".join(f"`{t}`" for t in stage.tables)
    return spark_job(
        stage.produces,
        stage.job,
        args,
        doc_md=f"**Build, gate, publish** `{stage.produces}`. {stage.doc}\n\n"
        f"Runs `spark_jobs/jobs/{stage.job}.py`: stages the rows, validates them with the "
        f"table's Great Expectations suite, then publishes {tables} atomically. A failing "
        "gate publishes nothing and fails without retrying; the summary names the failed "
        "expectations and the report path.",
        root=root,
        outlets=[table_asset(t, root) for t in stage.tables],
        # A gate rejection or any failure after the retries: tell people (include.alerts).
        on_failure_callback=on_stage_failure,
    )


def publish_deadline(dag_id: str) -> DeadlineAlert | None:
    """The deadline of a daily run: published ``deadline_hours()`` after its logical date.

    Missed, the triggerer awaits ``include.alerts.on_missed_deadline``. None when
    ``LAKEHOUSE_PUBLISH_DEADLINE_HOURS=off``.
    """
    hours = deadline_hours()
    if hours is None:
        return None
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=dt.timedelta(hours=hours),
        callback=AsyncCallback(on_missed_deadline, kwargs={"dag_id": dag_id}),
        name=f"{dag_id} published",
    )


def training_sets_asset(root: str | None = None) -> Asset:
    """The Asset updated whenever a training set is published (its name is on the event)."""
    root = root or lakehouse_root()
    return Asset(name="training_sets", uri=table_uri(root, "training"), group="lakehouse")


@dataclass(frozen=True)
class TrainingRequest:
    """Templates for the arguments of one training-set build (rendered per run)."""

    spine: str
    name: str
    mode: str
    ttl_days: str  # renders to "" for no TTL
    features: str  # comma-separated; renders to "" for every feature


def training_set_tasks(
    request: TrainingRequest, root: str
) -> tuple[LakehouseSparkSubmitOperator, LakehouseSparkSubmitOperator]:
    """The build task (``training_set``) and gate task (``gate_training_set``) of a request."""
    args = [
        "--spine",
        request.spine,
        "--name",
        request.name,
        "--mode",
        request.mode,
        f"--ttl-days={request.ttl_days}",
        f"--features={request.features}",
        "--run-id",
        RUN_ID,
    ]
    build = spark_job(
        "training_set",
        "build_training_set",
        [*args, "--step", "build"],
        doc_md="**Build** the point-in-time training set into staging: each spine row joined "
        "to the feature snapshot it could have seen at its `ts`, and a draft manifest.",
        root=root,
    )
    gate = spark_job(
        "gate_training_set",
        "build_training_set",
        [*args, "--step", "publish"],
        doc_md="**Gate** the staged training set (leakage and row checks, then its Great "
        "Expectations suite) and publish it to `training/<name>` with its manifest, which "
        "records the Delta version of every input.",
        root=root,
        outlets=[training_sets_asset(root)],
        published_training_set=request.name,
    )
    build >> gate
    return build, gate


def scheduled_training_request() -> dict[str, str]:
    """The training set to rebuild when features change, from Variables or the environment.

    ``training_spine`` (env ``TRAINING_SPINE``) is required; ``training_set_name``,
    ``training_mode``, ``training_ttl_days`` and ``training_features`` are optional.
    Raises AirflowSkipException when no spine is configured, so nothing runs, and
    AirflowFailException when the name breaks the safe-name rule (spark_jobs.names),
    so it never reaches a path.
    """
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    def setting(key: str, default: str) -> str:
        return str(Variable.get(key, default=os.environ.get(key.upper(), default)) or "")

    spine = setting("training_spine", "")
    if not spine:
        raise AirflowSkipException(
            "no training spine configured (Variable training_spine or env TRAINING_SPINE): "
            "nothing to rebuild"
        )
    name = setting("training_set_name", "scheduled")
    try:
        validate_name(name, "training set name")
    except UnsafeNameError as exc:
        raise AirflowFailException(
            f"{exc}; fix the Variable training_set_name (or env TRAINING_SET_NAME)"
        ) from None
    return {
        "spine": spine,
        "name": name,
        "mode": setting("training_mode", "as_known"),
        "ttl_days": setting("training_ttl_days", ""),
        "features": setting("training_features", ""),
    }
