"""Great Expectations gates: validate a stage's staged rows with its table's suite.

The gate runs inside the Spark job on the staged DataFrame (GX's Spark datasource), so
nothing but aggregates and a handful of example values ever reaches the driver. This
module puts the parts together; each lives in a module of its own:

- ``suites``: the versioned suite files in ``expectations/`` and their severities;
- ``gate_parameters``: the thresholds (``GateSettings``) and the suite parameters of a
  run, derived from its dates and its published and staged rows;
- ``gx_runner``: the GX context and running a suite on the staged frame;
- ``results``: ``GateResult`` and the wording of failed and warned expectations;
- ``reports``: the HTML report, the JSON result and the reports index.

Great Expectations is imported lazily, on the first validation, so importing this module
(e.g. while Airflow parses DAGs) stays cheap.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from spark_jobs.catalog import Table
from spark_jobs.quality import gx_runner, reports
from spark_jobs.quality.gate_parameters import (
    QUARANTINE_PARAMETERS,
    ROW_COUNT_PARAMETERS,
    GateSettings,
    build_parameters,
)
from spark_jobs.quality.reports import INDEX_FILE, REPORT_FILE, RESULT_FILE
from spark_jobs.quality.results import (
    GateResult,
    classify,
    describe_failure,
    jsonable,
    observations,
)
from spark_jobs.quality.suites import (
    SEVERITIES,
    SEVERITY_FAIL,
    SEVERITY_WARN,
    TRAINING_SET_SUITE,
    load_suite,
    suite_file,
    suite_name_for,
    suite_parameters,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "INDEX_FILE",
    "QUARANTINE_PARAMETERS",
    "REPORT_FILE",
    "RESULT_FILE",
    "ROW_COUNT_PARAMETERS",
    "SEVERITIES",
    "SEVERITY_FAIL",
    "SEVERITY_WARN",
    "TRAINING_SET_SUITE",
    "GateResult",
    "GateSettings",
    "build_parameters",
    "describe_failure",
    "index_validation",
    "load_suite",
    "suite_file",
    "suite_name_for",
    "suite_parameters",
    "validate_table",
]

log = logging.getLogger(__name__)


def validate_table(
    spark: SparkSession,
    root: str,
    table: Table,
    staged: DataFrame,
    params: dict[str, object],
    run_key: str,
    suite_name: str | None = None,
    index_when_passed: bool = True,
) -> GateResult:
    """Validate ``staged`` rows of ``table`` with its suite; write the report and index line.

    With ``index_when_passed=False`` a passed gate's index line waits for
    ``index_validation`` (after the publish): a run killed between gate and publish then
    lists no "passed" validation for rows that were never published.

    ``params`` needs ``start`` and ``end`` (the run's logical dates) for most suites and may
    override any GateSettings field or suite parameter. The staged frame is validated once,
    all expectations together, for pass/fail and observed values (counts of unexpected
    rows); failed expectations are then looked at again for a few example values.
    """
    suite_name = suite_name or suite_name_for(table)
    suite = load_suite(suite_name)
    settings = GateSettings.resolve(params)
    # The staged rows are read straight from their Delta files, not cached: each of the
    # few queries a validation runs reads only the columns it needs, which costs less
    # than materialising every column in memory first.
    observed: dict[str, Any] = {}
    values = build_parameters(
        spark, root, table, params, run_key, suite_parameters(suite), settings, staged, observed
    )
    gx_result = gx_runner.run_validation(
        suite_name,
        suite,
        staged,
        values,
        failure_examples=settings.partial_unexpected_count,
        warning_examples=settings.warning_examples,
    )
    failed, warnings = classify(gx_result)
    validated_at = dt.datetime.now(dt.UTC)
    gate = GateResult(
        table=table.name,
        passed=not failed,
        failed=failed,
        warnings=warnings,
        suite=suite_name,
        run_key=run_key,
        evaluated=len(gx_result.results),
        observations=observations(
            gx_result, observed.get("expected_rows"), settings.row_count_fail_ratio
        ),
    )
    run_dates = {k: jsonable(params[k]) for k in ("start", "end") if params.get(k) is not None}
    reports.write_report(root, table, gate, gx_result, values, run_dates, validated_at)
    if not gate.passed or index_when_passed:
        reports.append_index_line(root, gate)
    log_method = log.info if gate.passed and not warnings else log.warning
    log_method("%s", gate.summary())
    return gate


def index_validation(spark: SparkSession | None, root: str, gate: GateResult) -> None:
    """Add a validation's line to the reports index (once), which the plugin lists.

    ``spark`` is not used (the index is written through ``spark_jobs.storage.files``);
    it stays in the signature for the callers that pass it.
    """
    reports.append_index_line(root, gate)
