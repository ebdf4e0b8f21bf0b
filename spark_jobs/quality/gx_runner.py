"""Running a suite with Great Expectations on a staged Spark DataFrame.

One ephemeral GX context per process, quiet (no analytics, no progress bars), cached
with its Spark datasource and one validation definition per suite. The staged frame is
validated once, all expectations together, for pass/fail and observed values; missed
row-level expectations are then validated again, alone, for a few example values.

Great Expectations is imported here lazily, on the first validation, so importing the
gates (e.g. while Airflow parses DAGs) stays cheap.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spark_jobs.quality.suites import SEVERITY_WARN, severity

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_GX_CACHE: dict[tuple[str, ...], Any] = {}
_IMPORTS: list[threading.Thread] = []  # the background import preload() started, if any
# Observed values and unexpected counts, no example values.
_COUNTS_ONLY = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
}


def preload() -> None:
    """Start importing Great Expectations in a background thread, once per process.

    A stage's gate needs GX after its build step, and the import costs seconds of
    Python. The build mostly waits on Spark (the JVM or the Connect server does the
    work), so the import runs meanwhile; the gate's ``context()`` waits for it to end.
    """
    if _IMPORTS or "great_expectations" in sys.modules:
        return
    thread = threading.Thread(target=_import_gx, name="gx-import", daemon=True)
    _IMPORTS.append(thread)
    thread.start()


def _import_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    try:
        import great_expectations  # noqa: F401

        import spark_jobs.quality.gx_expectations  # noqa: F401
    except Exception:  # the gate imports it again in its own thread and reports the error
        return


def context() -> Any:
    """The process's one ephemeral GX context, quiet: no analytics, no progress bars.

    Building it registers the lakehouse's own expectation (``gx_expectations``).
    """
    if ("context",) not in _GX_CACHE:
        for thread in _IMPORTS:
            thread.join()
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        import spark_jobs.quality.gx_expectations  # noqa: F401  (registers the lakehouse's expectation)

        gx_context = gx.get_context(mode="ephemeral")
        gx_context.variables.progress_bars = ProgressBarsConfig(globally=False)
        _GX_CACHE[("context",)] = gx_context
    return _GX_CACHE[("context",)]


def validation_definition(suite_name: str, suite: dict[str, Any]) -> Any:
    """The process-wide GX validation definition of a suite (one ephemeral context)."""
    gx_context = context()
    key = ("validation", suite_name)
    if key not in _GX_CACHE:
        import great_expectations as gx

        if ("datasource",) not in _GX_CACHE:
            # persist=False: each pass reads the staged rows from their Delta staging
            # table again rather than keeping a cached copy in executor memory.
            _GX_CACHE[("datasource",)] = gx_context.data_sources.add_spark(
                name="lakehouse", persist=False
            )
        datasource = _GX_CACHE[("datasource",)]
        asset = datasource.add_dataframe_asset(name=suite_name)
        batch = asset.add_batch_definition_whole_dataframe("staged")
        gx_suite = gx_context.suites.add(gx.ExpectationSuite(**suite))
        _GX_CACHE[key] = gx_context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=gx_suite)
        )
    return _GX_CACHE[key]


def run_validation(
    suite_name: str,
    suite: dict[str, Any],
    staged: DataFrame,
    values: Mapping[str, Any],
    failure_examples: int,
    warning_examples: int,
) -> Any:
    """The GX validation result of ``staged`` against a suite, its parameters filled.

    Missed row-level expectations carry up to ``failure_examples`` (severity fail) or
    ``warning_examples`` (severity warn) example values; passing column-list
    expectations carry the columns GX saw.
    """
    validation = validation_definition(suite_name, suite)
    # Every expectation in one validation, with its observed value or unexpected count
    # (GX computes those for pass/fail anyway) but no example values: examples cost a
    # Spark job per expectation, while a request for none plans an empty query that
    # Spark answers without a job. Failures are looked at again for a few examples.
    gx_result = validation.run(
        batch_parameters={"dataframe": staged},
        expectation_parameters=dict(values),
        result_format=_COUNTS_ONLY,
    )
    _explain_misses(validation, staged, gx_result, values, failure_examples, warning_examples)
    _fill_column_observations(gx_result, staged.columns)
    return gx_result


def _fill_column_observations(gx_result: Any, columns: list[str]) -> None:
    """Give passing column-list expectations the columns GX saw; its page renderer needs them."""
    for result in gx_result.results:
        if result.expectation_config.type.startswith("expect_table_columns_to_match"):
            result.result = {"observed_value": columns, **(result.result or {})}


def _explain_misses(
    validation: Any,
    staged: DataFrame,
    gx_result: Any,
    values: Mapping[str, Any],
    failure_examples: int,
    warning_examples: int,
) -> None:
    """Give missed row-level expectations a few example values, for the message and report.

    Failures get ``failure_examples`` examples; warnings keep their counts only unless
    ``warning_examples`` is above 0. Each costs one validation of that expectation alone
    (a query that stops once it has its examples).
    """
    wanted: dict[int, int] = {}
    for index, result in enumerate(gx_result.results):
        outcome = result.result or {}
        if result.success or "unexpected_count" not in outcome:
            continue  # passed, could not be evaluated, or a table-level observed value
        count = (
            warning_examples
            if severity(result.expectation_config) == SEVERITY_WARN
            else failure_examples
        )
        if count > 0:
            wanted[index] = count
    if not wanted:
        return
    batch = validation.batch_definition.get_batch(batch_parameters={"dataframe": staged})
    by_id = {e.id: e for e in validation.suite.expectations}
    for index, count in wanted.items():
        expectation = by_id[gx_result.results[index].expectation_config.id]
        result_format = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": count,
            "include_unexpected_rows": False,
        }
        gx_result.results[index] = batch.validate(
            expectation, result_format=result_format, expectation_parameters=dict(values)
        )
