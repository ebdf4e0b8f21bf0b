"""Suite parameters of a run: derived from its dates, its published and its staged rows.

A suite names the run-dependent values it needs as ``{"$PARAMETER": "..."}``; this
module fills them: the dates, the previous day's row count band, the quarantine limits,
the reference currencies, the drift reference bins. What it needs to know about a table
(which column counts rows per day, whether a run recomputes whole days, which table's
records a quarantine is a share of, which columns drift) is declared on the table's
entry in ``spark_jobs.catalog``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from spark_jobs.catalog import Table, staging_path
from spark_jobs.quality import drift
from spark_jobs.quality.results import jsonable
from spark_jobs.transforms.fx import load_currencies

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW_COUNT_PARAMETERS = frozenset(
    {"previous_day_rows", "rows_warn_min", "rows_warn_max", "rows_fail_min", "rows_fail_max"}
)
QUARANTINE_PARAMETERS = frozenset({"quarantine_warn_max_rows", "quarantine_fail_max_rows"})


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the gates; defaults here, ``LAKEHOUSE_GATE_<NAME>`` or gate params override.

    Row-count bands are ratios against the previous day's published rows (times the
    number of days in the run): a day with 1.5x more or fewer rows warns, 10x fails. The
    band only applies once the previous day has at least ``row_count_min_baseline`` rows,
    because small days swing by chance. A failed expectation shows
    ``partial_unexpected_count`` example values; a warning shows its counts, plus
    ``warning_examples`` values when that is above 0 (each costs a query of its own).
    Drift columns warn above a population stability index of ``drift_warn_psi`` against
    the published rows of the ``drift_window_days`` days before the run, once those hold
    ``drift_min_reference_rows`` values.
    """

    row_count_warn_ratio: float = 1.5
    row_count_fail_ratio: float = 10.0
    row_count_min_baseline: int = 100
    quarantine_warn_share: float = 0.05
    quarantine_fail_share: float = 0.25
    max_lateness_days: int = 30
    partial_unexpected_count: int = 5
    warning_examples: int = 0
    drift_warn_psi: float = 0.25
    drift_window_days: int = 28
    drift_min_reference_rows: int = 100

    @classmethod
    def resolve(
        cls, params: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> GateSettings:
        """Settings from the environment, then from the gate params of the run."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = params.get(f.name, env.get(f"LAKEHOUSE_GATE_{f.name.upper()}"))
            if raw is not None:
                kind = int if f.type in ("int", int) else float
                values[f.name] = kind(raw)
        return cls(**values)


def build_parameters(
    spark: SparkSession,
    root: str,
    table: Table,
    params: Mapping[str, Any],
    run_key: str,
    needed: set[str],
    settings: GateSettings,
    staged: DataFrame | None = None,
    observations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Values for the suite's parameters: derived from the run, then the caller's overrides.

    ``observations``, when given, receives what the gate reports beside the parameters:
    ``expected_rows`` (the centre of the row-count band; None without a baseline).
    Raises ValueError naming any parameter the suite needs and nobody provided.
    """
    values: dict[str, Any] = {}
    if "start" in params:
        start = as_date(params["start"])
        end = as_date(params.get("end") or start)
        values.update(
            start=start.isoformat(),
            end=end.isoformat(),
            earliest_event_date=(start - dt.timedelta(days=settings.max_lateness_days)).isoformat(),
            # Rows of a landing day become known at its end (00:00 UTC the next day).
            available_from=f"{start + dt.timedelta(days=1)}T00:00:00",
            available_until=f"{end + dt.timedelta(days=1)}T00:00:00",
        )
        if needed & ROW_COUNT_PARAMETERS:
            days = (end - start).days + 1
            if table.recomputed_per_day:
                # Late rows make a landing date rebuild every event day they touch, so
                # the expected size scales with the days staged, not the landing days.
                # The stage knows how many it rebuilt ("staged_days"); else count them.
                if params.get("staged_days") is not None:
                    days = max(1, int(params["staged_days"]))
                elif staged is not None and table.row_count_day_column:
                    column = table.row_count_day_column
                    days = max(1, staged.select(column).distinct().count())
            band = row_count_band(spark, root, table, start, days, settings)
            if observations is not None:
                observations["expected_rows"] = band.pop("expected_rows")
            values.update(band)
        drift_columns = drift.parameter_columns(needed)
        if drift_columns and table.row_count_day_column:
            from spark_jobs.storage import delta

            values.update(
                drift.reference(
                    delta.read_if_exists(spark, table.path(root)),
                    drift_columns,
                    table.row_count_day_column,
                    start,
                    settings.drift_window_days,
                    settings.drift_min_reference_rows,
                )
            )
    if drift.PSI_LIMIT_PARAMETER in needed:
        values[drift.PSI_LIMIT_PARAMETER] = settings.drift_warn_psi
    if "currencies" in needed:
        values["currencies"] = load_currencies()
    if needed & QUARANTINE_PARAMETERS and table.quarantine_of is not None:
        values.update(quarantine_limits(spark, root, table, params, run_key, settings))
    values.update({k: jsonable(v) for k, v in params.items() if k in needed})
    missing = sorted(needed - values.keys())
    if missing:
        raise ValueError(
            f"suite for {table.name} needs parameter(s) {', '.join(missing)}; "
            "pass them in the stage's gate params"
        )
    return {k: values[k] for k in sorted(needed)}


def row_count_band(
    spark: SparkSession,
    root: str,
    table: Table,
    start: dt.date,
    days: int,
    settings: GateSettings,
) -> dict[str, Any]:
    """Row-count limits for the run from the previous day's published rows.

    The previous day's rows are those whose ``table.row_count_day_column`` is the day
    before ``start``; a table without that column has no baseline (limits stay open).
    Counting one day of a table partitioned (or data-skipped) by the day column reads
    only that day's files.
    """
    from pyspark.sql import functions as F

    from spark_jobs.storage import delta

    previous = 0
    column = table.row_count_day_column
    published = delta.read_if_exists(spark, table.path(root)) if column else None
    if column and published is not None:
        previous_day = start - dt.timedelta(days=1)
        previous = published.where(F.col(column) == F.lit(previous_day)).count()
    band: dict[str, Any] = {
        "previous_day_rows": previous,
        "rows_warn_min": 0,
        "rows_warn_max": None,
        "rows_fail_min": 0,
        "rows_fail_max": None,
        "expected_rows": None,
    }
    if previous >= settings.row_count_min_baseline:
        expected = previous * days
        band.update(
            expected_rows=expected,
            rows_warn_min=math.floor(expected / settings.row_count_warn_ratio),
            rows_warn_max=math.ceil(expected * settings.row_count_warn_ratio),
            rows_fail_min=math.floor(expected / settings.row_count_fail_ratio),
            rows_fail_max=math.ceil(expected * settings.row_count_fail_ratio),
        )
    return band


def quarantine_limits(
    spark: SparkSession,
    root: str,
    table: Table,
    params: Mapping[str, Any],
    run_key: str,
    settings: GateSettings,
) -> dict[str, Any]:
    """Most quarantined rows the run may have: a share of the records it kept or rejected.

    ``table`` is the quarantine; the records kept are the run's staged rows of
    ``table.quarantine_of``. The gate params ``silver_rows`` and ``quarantine_rows``,
    when given, stand in for counting the staged rows of the kept and the quarantine
    table.
    """
    kept = table.quarantine_of
    if kept is None:
        raise ValueError(f"{table.name} declares no quarantine_of table in the catalog")
    silver_rows = params.get("silver_rows")
    quarantine_rows = params.get("quarantine_rows")
    from spark_jobs.storage import delta

    # Rows staged by the run (0 where it staged nothing), from the staging commits.
    if silver_rows is None:
        silver_rows = delta.row_count(spark, staging_path(root, kept, run_key))
    if quarantine_rows is None:
        quarantine_rows = delta.row_count(spark, staging_path(root, table, run_key))
    records = int(silver_rows) + int(quarantine_rows)
    return {
        "quarantine_warn_max_rows": math.floor(records * settings.quarantine_warn_share),
        "quarantine_fail_max_rows": math.floor(records * settings.quarantine_fail_share),
    }


def as_date(value: object) -> dt.date:
    """A date from a date, a datetime or ISO text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
