"""Run metrics: every stage run writes one ``ops.stage_runs`` row about itself.

A job opens ``recording(...)`` around its steps; write-audit-publish reports into it
(``mark_built``, ``phase("gate")``, ``observe_output``, ``published``) and the job adds
what only it knows (``note(rows_in=...)``). When the run ends, passed, rejected or
failed, the row is appended under the writer lock the job holds, and one line sums it
up in the task log.

Metrics never decide a stage: anything that goes wrong while measuring or writing is
logged as a warning and the stage carries on with the result it had.
``LAKEHOUSE_OPS_METRICS=off`` turns recording off (the overhead bench's baseline).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, TimestampType

from spark_jobs.catalog import OPS_STAGE_RUNS, Table
from spark_jobs.cli import DateRange, GateFailed
from spark_jobs.config import OFF_WORDS
from spark_jobs.storage import delta

log = logging.getLogger(__name__)

ENABLED_ENV = "LAKEHOUSE_OPS_METRICS"
# Where Airflow's task tells its job who runs it (include.operators sets them).
CONTEXT_ENV = {
    "dag_id": "LAKEHOUSE_DAG_ID",
    "dag_run_id": "LAKEHOUSE_DAG_RUN_ID",
    "task_id": "LAKEHOUSE_TASK_ID",
}
ATTEMPT_ENV = "LAKEHOUSE_TRY_NUMBER"
# Days between event and landing, as the buckets of ``late_by_days``.
LATENESS_BUCKETS = (("0", 0, 0), ("1", 1, 1), ("2-3", 2, 3), ("4-7", 4, 7), ("8+", 8, None))

_CURRENT: ContextVar[StageRun | None] = ContextVar("stage_run", default=None)


class GateOutcome(Protocol):
    """What a table's gate result tells the metrics (quality.results.GateResult)."""

    passed: bool
    failed: list[dict]
    warnings: list[dict]
    observations: dict[str, Any]


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``LAKEHOUSE_OPS_METRICS`` is off, false, 0 or no."""
    value = (os.environ if environ is None else environ).get(ENABLED_ENV, "on")
    return value.strip().lower() not in OFF_WORDS


@dataclass
class StageRun:
    """The run being recorded: who runs it, how long each part took, what it counted."""

    stage: str
    job: str
    step: str
    days: DateRange
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    values: dict[str, Any] = field(default_factory=dict)
    status: str = "failed"
    _clock: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self._clock

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent inside to the ``<name>_s`` column."""
        began = time.perf_counter()
        try:
            yield
        finally:
            key = f"{name}_s"
            self.values[key] = self.values.get(key, 0.0) + time.perf_counter() - began

    def row(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The ``ops.stage_runs`` row of this run, as it stands now."""
        env = os.environ if environ is None else environ
        ended = dt.datetime.now(dt.UTC)
        context = {column: env.get(name) or None for column, name in CONTEXT_ENV.items()}
        try:
            attempt = max(1, int(env.get(ATTEMPT_ENV) or 1))
        except ValueError:
            attempt = 1
        row: dict[str, Any] = dict.fromkeys(OPS_STAGE_RUNS.schema.fieldNames())
        row.update(
            {k: v for k, v in self.values.items() if k in row},
            stage=self.stage,
            job=self.job,
            step=self.step,
            run_key=self.days.key,
            start_date=self.days.start,
            end_date=self.days.end,
            attempt=attempt,
            status=self.status,
            started_at=_naive(self.started_at),
            ended_at=_naive(ended),
            duration_s=round(self.elapsed(), 3),
            **context,
        )
        return row


def current() -> StageRun | None:
    """The run this process is recording, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time a part of the current run (``gate``, ``publish``); nothing when not recording."""
    run = current()
    if run is None:
        yield
        return
    with run.phase(name):
        yield


def note(**values: Any) -> None:
    """Set columns of the current run's row (``rows_in=...``, ``status=...``)."""
    run = current()
    if run is None:
        return
    status = values.pop("status", None)
    if status is not None:
        run.values["_status"] = status
    run.values.update(values)


def mark_built() -> None:
    """The build step has staged its rows: ``build_s`` is the time from the start to now."""
    run = current()
    if run is not None:
        run.values["build_s"] = round(run.elapsed(), 3)


def gated(results: Iterable[GateOutcome]) -> None:
    """Record what the stage's gates found, passed or not."""
    outcomes = list(results)
    if current() is None or not outcomes:
        return
    note(
        gate_passed=all(r.passed for r in outcomes),
        gate_failed_expectations=sum(len(r.failed) for r in outcomes),
        gate_warnings=sum(len(r.warnings) for r in outcomes),
    )
    # The first table's figures: a stage lists its main table first.
    for name in ("row_band_position", "feature_psi"):
        found = [r.observations[name] for r in outcomes if r.observations.get(name) is not None]
        if found:
            note(**{name: found[0]})


def published(
    root: str, main: Table, row_counts: Mapping[str, int], versions: Mapping[str, int]
) -> None:
    """Record a publish: versions, the main table's rows, bytes and files committed."""
    if current() is None:
        return
    bytes_written = files_written = 0
    for name, version in versions.items():
        table_path = _path_of(root, name)
        if table_path is None or version < 0:
            continue
        try:
            counted = delta.commit_info(table_path, version).get("operationMetrics", {})
        except Exception as exc:
            log.warning("ops metrics: no commit metrics for %s v%s: %s", name, version, exc)
            continue
        bytes_written += _first_int(counted, "numOutputBytes", "numTargetBytesAdded")
        files_written += _first_int(counted, "numFiles", "numTargetFilesAdded", "numAddedFiles")
    note(
        published=True,
        rows_out=row_counts.get(main.name),
        output_versions=dict(versions),
        bytes_written=bytes_written,
        files_written=files_written,
    )


def observe_output(spark: SparkSession, frame: DataFrame) -> None:
    """Skew, freshness and lateness of a stage's main output, in one Spark job.

    The rows are grouped per user, then per partition of a ``user_id`` hash shuffle
    with the session's ``spark.sql.shuffle.partitions`` (Spark partitions a per-user
    aggregation the same way): the largest and the median partition, and the user with
    the most rows. Newest event time and days late ride along in the same query.
    """
    run = current()
    if run is None:
        return
    try:
        note(**_shape(spark, frame, run.days))
    except Exception as exc:
        log.warning("ops metrics: could not measure the output's shape: %s", exc)


def observe_quarantine(frame: DataFrame) -> None:
    """Quarantined rows per reason code, and their total."""
    if current() is None:
        return
    try:
        counts = {
            r["reason"]: int(r["rows"])
            for r in frame.groupBy("reason").count().withColumnRenamed("count", "rows").collect()
        }
    except Exception as exc:
        log.warning("ops metrics: could not count the quarantine by reason: %s", exc)
        return
    note(quarantine_by_reason=counts, rows_quarantined=sum(counts.values()))


@contextlib.contextmanager
def recording(
    spark: SparkSession, root: str, job: str, stage: str, days: DateRange, step: str
) -> Iterator[StageRun | None]:
    """Record the run inside; on the way out, whatever happened, write its row."""
    if not enabled():
        yield None
        return
    run = StageRun(stage=stage, job=job, step=step, days=days)
    token = _CURRENT.set(run)
    try:
        yield run
        run.status = "published" if run.values.get("published") else "built"
    except GateFailed:
        run.status = "gate_failed"
        raise
    except BaseException as exc:
        run.status = "failed"
        run.values["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        raise
    finally:
        _CURRENT.reset(token)
        run.status = run.values.pop("_status", None) or run.status
        write(spark, root, run)


def write(spark: SparkSession, root: str, run: StageRun) -> None:
    """Append the run's row to ``ops.stage_runs`` and log its summary; never raises."""
    row = run.row()
    log.info("%s", summary_line(row))
    try:
        frame = spark.createDataFrame([row], OPS_STAGE_RUNS.schema)
        # mergeSchema: a table written before a column was added takes it on.
        frame.write.format("delta").mode("append").option("mergeSchema", "true").save(
            OPS_STAGE_RUNS.path(root)
        )
    except Exception as exc:
        log.warning(
            "ops.stage_runs: this run's row was not written (the stage is not affected): %s",
            str(exc).splitlines()[0] if str(exc) else exc,
        )


def summary_line(row: Mapping[str, Any]) -> str:
    """One line about a run: status, time per part, rows, skew."""
    parts = [
        f"{part} {row[f'{part}_s']:.1f}"
        for part in ("build", "gate", "publish")
        if row.get(f"{part}_s") is not None
    ]
    text = f"stage {row['stage']} {row['status']} in {row['duration_s']:.1f} s"
    if parts:
        text += f" ({', '.join(parts)})"
    if row.get("rows_out") is not None:
        text += f"; rows out {row['rows_out']:,}"
    if row.get("rows_quarantined"):
        text += f", quarantined {row['rows_quarantined']:,}"
    if row.get("skew_ratio") is not None:
        text += (
            f"; skew {row['skew_ratio']:.1f}x (hot key {row['hot_key']}: "
            f"{row['hot_key_rows']:,} rows)"
        )
    return text


def _shape(spark: SparkSession, frame: DataFrame, days: DateRange) -> dict[str, Any]:
    types = {f.name: f.dataType for f in frame.schema.fields}
    if "user_id" not in types:
        return {}
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
    per_user = [F.count(F.lit(1)).alias("n")]
    newest = None
    # Typed times only: bronze keeps event_time as the string that landed.
    if isinstance(types.get("event_time"), TimestampType):
        newest = F.max("event_time")
    elif isinstance(types.get("event_date"), DateType):  # a daily table: complete at its end
        newest = F.max(F.date_add("event_date", 1).cast("timestamp"))
    if newest is not None:
        per_user.append(newest.alias("newest"))
    late = all(isinstance(types.get(c), DateType) for c in ("_landing_date", "event_date"))
    if late:
        lateness = F.datediff("_landing_date", "event_date")
        for name, low, high in LATENESS_BUCKETS:
            inside = lateness >= low if high is None else lateness.between(low, high)
            per_user.append(F.sum(F.when(inside, 1).otherwise(0)).alias(f"late_{name}"))
    users = frame.groupBy("user_id").agg(*per_user)
    per_partition = [
        F.sum("n").alias("rows"),
        F.max_by("user_id", "n").alias("hot_key"),
        F.max("n").alias("hot_rows"),
    ]
    if newest is not None:
        per_partition.append(F.max("newest").alias("newest"))
    if late:
        per_partition += [F.sum(f"late_{n}").alias(f"late_{n}") for n, _, _ in LATENESS_BUCKETS]
    rows = (
        users.groupBy(F.pmod(F.hash("user_id"), F.lit(partitions)).alias("partition"))
        .agg(*per_partition)
        .collect()
    )
    if not rows:
        return {"shuffle_partitions": partitions}
    sizes = [int(r["rows"]) for r in rows] + [0] * (partitions - len(rows))
    median = float(statistics.median(sizes))
    hottest = max(rows, key=lambda r: r["hot_rows"])
    shape: dict[str, Any] = {
        "shuffle_partitions": partitions,
        "partition_rows_max": max(sizes),
        "partition_rows_median": median,
        "skew_ratio": round(max(sizes) / median, 3) if median > 0 else None,
        "hot_key": hottest["hot_key"],
        "hot_key_rows": int(hottest["hot_rows"]),
    }
    newest_seen = [r["newest"] for r in rows if newest is not None and r["newest"] is not None]
    if newest_seen:
        day_end = dt.datetime.combine(days.end + dt.timedelta(days=1), dt.time())
        shape["freshness_lag_s"] = (day_end - _naive(max(newest_seen))).total_seconds()
    if late:
        shape["late_by_days"] = {
            name: sum(int(r[f"late_{name}"]) for r in rows) for name, _, _ in LATENESS_BUCKETS
        }
    return shape


def _naive(moment: dt.datetime) -> dt.datetime:
    """A UTC moment without tzinfo (Spark reads naive datetimes as session-local time)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _first_int(values: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        if values.get(key) is not None:
            try:
                return int(values[key])
            except (TypeError, ValueError):
                return 0
    return 0


def _path_of(root: str, name: str) -> str | None:
    from spark_jobs.catalog import TABLES_BY_NAME

    table = TABLES_BY_NAME.get(name)
    return None if table is None else table.path(root)
