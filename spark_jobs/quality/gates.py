"""Great Expectations gates: validate a stage's staged rows with its table's suite.

The gate runs inside the Spark job on the staged DataFrame (GX's Spark datasource), so
nothing but aggregates and a handful of example values ever reaches the driver. Every
validation leaves an HTML report (rendered here from the GX result, every value that
came from data escaped) and the JSON result under
``<root>/_reports/<suite>/<run_key>/<validated_at>/`` and one line in
``<root>/_reports/index.jsonl``, which the Airflow plugin lists.

Suites are versioned JSON files in ``expectations/``; each expectation carries
``meta.severity``: ``fail`` (the default) blocks the publish, ``warn`` is logged and
reported only. Values that depend on the run (the dates, the previous day's row count,
the quarantine limits, the reference currencies) are suite parameters
(``{"$PARAMETER": "start"}``), filled here at validation time.

Great Expectations is imported lazily, on the first validation, so importing this module
(e.g. while Airflow parses DAGs) stays cheap.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark_jobs.catalog import (
    BRONZE_PURCHASES,
    GOLD_USER_DAILY,
    GOLD_USER_FEATURES,
    SILVER_PURCHASES,
    SILVER_QUARANTINE,
    Table,
    join_path,
    reference_path,
    reports_path,
    staging_path,
)
from spark_jobs.config import EXPECTATIONS_DIR

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SEVERITY_FAIL = "fail"
SEVERITY_WARN = "warn"
SEVERITIES = (SEVERITY_FAIL, SEVERITY_WARN)

TRAINING_SET_SUITE = "training_set"
INDEX_FILE = "index.jsonl"
REPORT_FILE = "report.html"
RESULT_FILE = "result.json"

# The column whose value says which day a row belongs to, for the day-over-day row count
# band: staged rows are compared with the published rows of the day before the run.
ROW_COUNT_DAY_COLUMN = {
    BRONZE_PURCHASES.name: "_landing_date",
    SILVER_PURCHASES.name: "_landing_date",
    GOLD_USER_DAILY.name: "event_date",
    GOLD_USER_FEATURES.name: "as_of_date",
}
# Tables whose staged rows are whole event days recomputed by a run. (A late row stages
# only the changed users' snapshots of earlier days in gold.user_features, so its band
# stays per landing day.)
RECOMPUTED_DAY_TABLES = frozenset({GOLD_USER_DAILY.name})
ROW_COUNT_PARAMETERS = frozenset(
    {"previous_day_rows", "rows_warn_min", "rows_warn_max", "rows_fail_min", "rows_fail_max"}
)
QUARANTINE_PARAMETERS = frozenset({"quarantine_warn_max_rows", "quarantine_fail_max_rows"})

# Kwargs that name the domain of an expectation rather than what it expects.
_DOMAIN_KWARGS = frozenset(
    {"batch_id", "column", "column_list", "column_A", "column_B", "result_format"}
)


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the gates; defaults here, ``LAKEHOUSE_GATE_<NAME>`` or gate params override.

    Row-count bands are ratios against the previous day's published rows (times the
    number of days in the run): a day with 1.5x more or fewer rows warns, 10x fails. The
    band only applies once the previous day has at least ``row_count_min_baseline`` rows,
    because small days swing by chance. A failed expectation shows
    ``partial_unexpected_count`` example values; a warning shows its counts, plus
    ``warning_examples`` values when that is above 0 (each costs a query of its own).
    """

    row_count_warn_ratio: float = 1.5
    row_count_fail_ratio: float = 10.0
    row_count_min_baseline: int = 100
    quarantine_warn_share: float = 0.05
    quarantine_fail_share: float = 0.25
    max_lateness_days: int = 30
    partial_unexpected_count: int = 5
    warning_examples: int = 0

    @classmethod
    def resolve(
        cls, params: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> GateSettings:
        """Settings from the environment, then from the gate params of the run."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = params.get(f.name, env.get(f"LAKEHOUSE_GATE_{f.name.upper()}"))
            if raw is not None:
                kind = int if f.type in ("int", int) else float
                values[f.name] = kind(raw)  # type: ignore[operator]
        return cls(**values)


@dataclass
class GateResult:
    """Outcome of validating one table's staged rows with its suite."""

    table: str
    passed: bool
    report_path: str | None = None
    failed: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    suite: str | None = None
    run_key: str | None = None
    result_path: str | None = None
    evaluated: int = 0
    # The reports-index line of a passed gate whose rows are not published yet.
    pending_index_line: str | None = None

    def summary(self) -> str:
        """A few readable lines: which expectations failed, observed vs expected, examples."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"{self.table}: gate {verdict} (suite {self.suite}, run {self.run_key}): "
            f"{len(self.failed)} of {self.evaluated} expectation(s) failed, "
            f"{len(self.warnings)} warning(s)"
        ]
        lines += [f"  FAIL {describe_failure(f)}" for f in self.failed]
        lines += [f"  WARN {describe_failure(w)}" for w in self.warnings]
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def describe_failure(failure: Mapping[str, Any]) -> str:
    """One line for a failed expectation: what, on which columns, expected vs observed."""
    target = f" [{failure['columns']}]" if failure.get("columns") else ""
    text = f"{failure['expectation']}{target}"
    if failure.get("description"):
        text += f" ({failure['description']})"
    if failure.get("exception"):
        return f"{text}: could not be evaluated: {failure['exception']}"
    text += f": expected {failure.get('expected') or 'to hold'}; observed {failure['observed']}"
    if failure.get("examples"):
        text += f"; e.g. {', '.join(_short(v) for v in failure['examples'])}"
    return text


def suite_name_for(table: Table) -> str:
    """The suite that gates ``table``: its own, or the shared one for training sets."""
    if (EXPECTATIONS_DIR / f"{table.suite_name}.json").exists():
        return table.suite_name
    if table.name.startswith("training."):
        return TRAINING_SET_SUITE
    return table.suite_name


def suite_file(suite_name: str) -> Path:
    """Where the versioned JSON file of a suite lives."""
    return EXPECTATIONS_DIR / f"{suite_name}.json"


def load_suite(suite_name: str) -> dict[str, Any]:
    """The suite's JSON, checked for the things GX does not check (severity values)."""
    path = suite_file(suite_name)
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {suite_name!r}: expected {path}")
    suite = json.loads(path.read_text())
    for expectation in suite["expectations"]:
        severity = expectation.get("meta", {}).get("severity", SEVERITY_FAIL)
        if severity not in SEVERITIES:
            raise ValueError(
                f"{path}: {expectation['type']} has severity {severity!r}; use one of {SEVERITIES}"
            )
    return suite


def suite_parameters(suite: Mapping[str, Any]) -> set[str]:
    """Names of the ``$PARAMETER`` placeholders a suite uses."""
    names: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "$PARAMETER" in value:
                names.add(str(value["$PARAMETER"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(suite["expectations"])
    return names


@cache
def reference_currencies() -> tuple[str, ...]:
    """ISO-4217 codes of include/reference/currencies.csv, the currencies we convert."""
    with open(reference_path("currencies.csv"), newline="") as handle:
        return tuple(row["currency"] for row in csv.DictReader(handle))


def build_parameters(
    spark: SparkSession,
    root: str,
    table: Table,
    params: Mapping[str, object],
    run_key: str,
    needed: set[str],
    settings: GateSettings,
    staged: DataFrame | None = None,
) -> dict[str, Any]:
    """Values for the suite's parameters: derived from the run, then the caller's overrides.

    Raises ValueError naming any parameter the suite needs and nobody provided.
    """
    values: dict[str, Any] = {}
    if "start" in params:
        start = _as_date(params["start"])
        end = _as_date(params.get("end") or start)
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
            if table.name in RECOMPUTED_DAY_TABLES:
                # Late rows make a landing date rebuild every event day they touch, so
                # the expected size scales with the days staged, not the landing days.
                # The stage knows how many it rebuilt ("staged_days"); else count them.
                if params.get("staged_days") is not None:
                    days = max(1, int(params["staged_days"]))  # type: ignore[call-overload]
                elif staged is not None:
                    column = ROW_COUNT_DAY_COLUMN[table.name]
                    days = max(1, staged.select(column).distinct().count())
            values.update(_row_count_band(spark, root, table, start, days, settings))
    if "currencies" in needed:
        values["currencies"] = list(reference_currencies())
    if needed & QUARANTINE_PARAMETERS:
        values.update(_quarantine_limits(spark, root, params, run_key, settings))
    values.update({k: _jsonable(v) for k, v in params.items() if k in needed})
    missing = sorted(needed - values.keys())
    if missing:
        raise ValueError(
            f"suite for {table.name} needs parameter(s) {', '.join(missing)}; "
            "pass them in the stage's gate params"
        )
    return {k: values[k] for k in sorted(needed)}


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
    # than materialising every column in memory first (1M silver rows: 5 s, not 9 s).
    values = build_parameters(
        spark, root, table, params, run_key, suite_parameters(suite), settings, staged
    )
    validation = _validation_definition(suite_name, suite)
    # Every expectation in one validation, with its observed value or unexpected count
    # (GX computes those for pass/fail anyway) but no example values: examples cost a
    # Spark job per expectation, while a request for none plans an empty query that
    # Spark answers without a job. Failures are looked at again for a few examples.
    gx_result = validation.run(
        batch_parameters={"dataframe": staged},
        expectation_parameters=values,
        result_format=_COUNTS_ONLY,
    )
    _explain_misses(validation, staged, gx_result, values, settings)
    _fill_column_observations(gx_result, staged.columns)
    failed, warnings = _classify(gx_result)
    validated_at = dt.datetime.now(dt.UTC)
    gate = GateResult(
        table=table.name,
        passed=not failed,
        failed=failed,
        warnings=warnings,
        suite=suite_name,
        run_key=run_key,
        evaluated=len(gx_result.results),
    )
    run_dates = {k: _jsonable(params[k]) for k in ("start", "end") if params.get(k) is not None}
    _write_report(spark, root, table, gate, gx_result, values, run_dates, validated_at)
    if not gate.passed or index_when_passed:
        index_validation(spark, root, gate)
    log_method = log.info if gate.passed and not warnings else log.warning
    log_method("%s", gate.summary())
    return gate


def _validation_definition(suite_name: str, suite: dict[str, Any]) -> Any:
    """The process-wide GX validation definition of a suite (one ephemeral context)."""
    context = _context()
    key = ("validation", suite_name)
    if key not in _GX_CACHE:
        import great_expectations as gx

        if ("datasource",) not in _GX_CACHE:
            # The gate persists the staged frame itself, and unpersists it afterwards.
            _GX_CACHE[("datasource",)] = context.data_sources.add_spark(
                name="lakehouse", persist=False
            )
        datasource = _GX_CACHE[("datasource",)]
        asset = datasource.add_dataframe_asset(name=suite_name)
        batch = asset.add_batch_definition_whole_dataframe("staged")
        gx_suite = context.suites.add(gx.ExpectationSuite(**suite))
        _GX_CACHE[key] = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=gx_suite)
        )
    return _GX_CACHE[key]


_GX_CACHE: dict[tuple[str, ...], Any] = {}
# Observed values and unexpected counts, no example values.
_COUNTS_ONLY = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
}


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
    settings: GateSettings,
) -> None:
    """Give missed row-level expectations a few example values, for the message and report.

    Failures get ``partial_unexpected_count`` examples; warnings keep their counts only
    unless ``warning_examples`` asks for examples too. Each costs one validation of
    that expectation alone (a query that stops once it has its examples).
    """
    wanted: dict[int, int] = {}
    for index, result in enumerate(gx_result.results):
        outcome = result.result or {}
        if result.success or "unexpected_count" not in outcome:
            continue  # passed, could not be evaluated, or a table-level observed value
        count = (
            settings.warning_examples
            if _severity(result.expectation_config) == SEVERITY_WARN
            else settings.partial_unexpected_count
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


def _context() -> Any:
    """The process's one ephemeral GX context, quiet: no analytics, no progress bars."""
    if ("context",) not in _GX_CACHE:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        import spark_jobs.quality.gx_expectations  # noqa: F401  (registers the lakehouse's expectation)

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        _GX_CACHE[("context",)] = context
    return _GX_CACHE[("context",)]


def _classify(gx_result: Any) -> tuple[list[dict], list[dict]]:
    """Failed expectations split by severity, each as a small JSON-able dict."""
    failed: list[dict] = []
    warnings: list[dict] = []
    for result in gx_result.results:
        if result.success:
            continue
        config = result.expectation_config
        severity = _severity(config)
        info = result.exception_info or {}
        raised = info.get("raised_exception")
        entry = _failure_entry(config, result.result or {}, severity)
        if raised:
            # An expectation that cannot be evaluated proves nothing: it blocks.
            entry["exception"] = str(info.get("exception_message"))[:300]
            failed.append(entry)
        else:
            (warnings if severity == SEVERITY_WARN else failed).append(entry)
    return failed, warnings


def _severity(config: Any) -> str:
    """The severity a GX expectation configuration carries in its meta (default: fail)."""
    return (config.meta or {}).get("severity", SEVERITY_FAIL)


def _failure_entry(config: Any, outcome: Mapping[str, Any], severity: str) -> dict[str, Any]:
    kwargs = dict(config.kwargs)
    columns = kwargs.get("column") or kwargs.get("column_list")
    if kwargs.get("column_A"):
        columns = [kwargs["column_A"], kwargs["column_B"]]
    expected = ", ".join(
        f"{k}={_short(v)}" for k, v in kwargs.items() if k not in _DOMAIN_KWARGS and v is not None
    )
    if "unexpected_count" in outcome:
        total = outcome.get("element_count") or 0
        share = outcome.get("unexpected_percent")
        observed = f"{outcome['unexpected_count']} of {total} rows unexpected"
        if share is not None:
            observed += f" ({share:.2f}%)"
    else:
        observed = _short(outcome.get("observed_value"))
    return {
        "expectation": config.type,
        "columns": ", ".join(columns) if isinstance(columns, list) else columns,
        "severity": severity,
        "description": config.description,
        "expected": expected,
        "observed": observed,
        "examples": [_jsonable(v) for v in (outcome.get("partial_unexpected_list") or [])[:3]],
    }


def _row_count_band(
    spark: SparkSession,
    root: str,
    table: Table,
    start: dt.date,
    days: int,
    settings: GateSettings,
) -> dict[str, Any]:
    """Row-count limits for the run from the previous day's published rows.

    Counting one day of a table partitioned (or data-skipped) by the day column reads
    only that day's files.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    previous = 0
    column = ROW_COUNT_DAY_COLUMN.get(table.name)
    path = table.path(root)
    if column and DeltaTable.isDeltaTable(spark, path):
        previous_day = start - dt.timedelta(days=1)
        previous = (
            spark.read.format("delta")
            .load(path)
            .where(F.col(column) == F.lit(previous_day))
            .count()
        )
    band: dict[str, Any] = {
        "previous_day_rows": previous,
        "rows_warn_min": 0,
        "rows_warn_max": None,
        "rows_fail_min": 0,
        "rows_fail_max": None,
    }
    if previous >= settings.row_count_min_baseline:
        expected = previous * days
        band.update(
            rows_warn_min=math.floor(expected / settings.row_count_warn_ratio),
            rows_warn_max=math.ceil(expected * settings.row_count_warn_ratio),
            rows_fail_min=math.floor(expected / settings.row_count_fail_ratio),
            rows_fail_max=math.ceil(expected * settings.row_count_fail_ratio),
        )
    return band


def _quarantine_limits(
    spark: SparkSession,
    root: str,
    params: Mapping[str, object],
    run_key: str,
    settings: GateSettings,
) -> dict[str, Any]:
    """Most quarantined rows the run may have: a share of the records it kept or rejected."""
    from delta.tables import DeltaTable

    silver_rows = params.get("silver_rows")
    quarantine_rows = params.get("quarantine_rows")
    if silver_rows is None:
        path = staging_path(root, SILVER_PURCHASES, run_key)
        silver_rows = (
            spark.read.format("delta").load(path).count()
            if DeltaTable.isDeltaTable(spark, path)
            else 0
        )
    if quarantine_rows is None:
        path = staging_path(root, SILVER_QUARANTINE, run_key)
        quarantine_rows = (
            spark.read.format("delta").load(path).count()
            if DeltaTable.isDeltaTable(spark, path)
            else 0
        )
    records = int(silver_rows) + int(quarantine_rows)  # type: ignore[call-overload]
    return {
        "quarantine_warn_max_rows": math.floor(records * settings.quarantine_warn_share),
        "quarantine_fail_max_rows": math.floor(records * settings.quarantine_fail_share),
    }


def _write_report(
    spark: SparkSession,
    root: str,
    table: Table,
    gate: GateResult,
    gx_result: Any,
    values: Mapping[str, Any],
    run_dates: Mapping[str, Any],
    validated_at: dt.datetime,
) -> None:
    """The HTML page and GX's JSON result under the reports folder; the index line waits.

    The line goes to ``gate.pending_index_line`` for ``index_validation`` to append.
    """
    stamp = validated_at.strftime("%Y%m%dT%H%M%S%fZ")
    # Training sets share a suite; their reports are kept apart by table.
    folder = table.suite_name if gate.suite == TRAINING_SET_SUITE else gate.suite
    relative = "/".join([folder or table.suite_name, gate.run_key or "", stamp])
    base = reports_path(root)
    page = _report_page(gx_result)
    _write_text(spark, join_path(base, relative, REPORT_FILE), _with_banner(page, gate, values))
    _write_text(
        spark,
        join_path(base, relative, RESULT_FILE),
        json.dumps(gx_result.to_json_dict(), indent=1, default=str),
    )
    gate.report_path = join_path(base, relative, REPORT_FILE)
    gate.result_path = join_path(base, relative, RESULT_FILE)
    entry = {
        "table": table.name,
        "suite": gate.suite,
        "run_key": gate.run_key,
        "start": run_dates.get("start"),
        "end": run_dates.get("end", run_dates.get("start")),
        "success": gate.passed,
        "evaluated": gate.evaluated,
        "failed": len(gate.failed),
        "warned": len(gate.warnings),
        "report": f"{relative}/{REPORT_FILE}",
        "result": f"{relative}/{RESULT_FILE}",
        "validated_at": validated_at.isoformat(),
    }
    gate.pending_index_line = json.dumps(entry, default=str)


def index_validation(spark: SparkSession, root: str, gate: GateResult) -> None:
    """Add a validation's line to the reports index (once), which the plugin lists."""
    if gate.pending_index_line is None:
        return
    _append_line(spark, join_path(reports_path(root), INDEX_FILE), gate.pending_index_line)
    gate.pending_index_line = None


# A landed value can be of any size: a report shows at most this much of one value, of
# one cell and this many example values per expectation, so that it stays small.
_REPORT_VALUE_CHARS = 200
_REPORT_CELL_CHARS = 2000
_REPORT_EXAMPLES = 20

_REPORT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{suite}: validation report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: left;
  vertical-align: top; }}
code {{ white-space: pre-wrap; word-break: break-all; }}
.failed {{ color: #b00020; font-weight: bold; }} .warned {{ color: #a15c00; }}
.passed {{ color: #1b5e20; }}
</style></head>
<body><h1>Validation report: {suite}</h1>
<p>Validated with Great Expectations {version}: {successful} of {evaluated} expectations
passed.</p>
<table><tr><th>expectation</th><th>columns</th><th>expected</th><th>result</th>
<th>observed</th><th>example values</th></tr>
{rows}
</table></body></html>
"""


def _report_page(gx_result: Any) -> str:
    """Our HTML page of a GX validation result, every value in it escaped and cut short.

    GX's own page templates insert example values as markup, so a landed value such as
    ``<script>`` would run in the reader's browser. This page is built from the result
    instead: nothing that came from the data or the suite reaches it unescaped.
    """
    statistics = gx_result.statistics or {}
    return _REPORT_PAGE.format(
        suite=_escaped(gx_result.suite_name),
        version=_escaped((gx_result.meta or {}).get("great_expectations_version", "")),
        successful=_escaped(statistics.get("successful_expectations", "?")),
        evaluated=_escaped(statistics.get("evaluated_expectations", len(gx_result.results))),
        rows="\n".join(_report_row(result) for result in gx_result.results),
    )


def _report_row(result: Any) -> str:
    """One expectation's table row: what it expects, its verdict, observed and examples."""
    config = result.expectation_config
    outcome = result.result or {}
    entry = _failure_entry(config, outcome, _severity(config))
    observed = entry["observed"]
    raised = (result.exception_info or {}).get("raised_exception")
    if raised:
        verdict, css = "could not be evaluated", "failed"
        observed = str((result.exception_info or {}).get("exception_message"))
    elif result.success:
        verdict, css = "passed", "passed"
    elif entry["severity"] == SEVERITY_WARN:
        verdict, css = "warning", "warned"
    else:
        verdict, css = "failed", "failed"
    examples = list(outcome.get("partial_unexpected_list") or [])
    shown = "<br>".join(f"<code>{_escaped(v)}</code>" for v in examples[:_REPORT_EXAMPLES])
    if len(examples) > _REPORT_EXAMPLES:
        shown += f"<br>and {len(examples) - _REPORT_EXAMPLES} more"
    described = (
        f"<br><small>{_escaped(entry['description'])}</small>" if entry["description"] else ""
    )
    cells = [
        f"<code>{_escaped(config.type)}</code>{described}",
        _escaped(entry["columns"] or "", _REPORT_CELL_CHARS),
        f"<code>{_escaped(entry['expected'], _REPORT_CELL_CHARS)}</code>",
        f'<span class="{css}">{verdict}</span>',
        _escaped(observed, _REPORT_CELL_CHARS),
        shown,
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _escaped(value: Any, limit: int = _REPORT_VALUE_CHARS) -> str:
    """A value as HTML text: cut to ``limit`` characters, then escaped (quotes too)."""
    return html.escape(_short(value, limit))


def _with_banner(page: str, gate: GateResult, values: Mapping[str, Any]) -> str:
    """The report page with our verdict on top: what failed or warned, and the parameters.

    Every value in it (table, suite, run, messages with example values) is escaped.
    """
    color = "#b00020" if not gate.passed else ("#a15c00" if gate.warnings else "#1b5e20")
    verdict = "FAILED: nothing published" if not gate.passed else "passed"
    items = "".join(
        f"<li><b>{kind}</b> {html.escape(describe_failure(f))}</li>"
        for kind, group in (("FAIL", gate.failed), ("WARN", gate.warnings))
        for f in group
    )
    params = html.escape(
        ", ".join(f"{k}={_short(v)}" for k, v in values.items() if k != "currencies")
    )
    banner = (
        f'<div id="lakehouse-gate" style="border-left:6px solid {color};padding:8px 16px;'
        f'margin:8px;font-family:sans-serif">'
        f'<h2 style="color:{color}">{html.escape(gate.table)}: gate {verdict}</h2>'
        f"<p>suite {html.escape(str(gate.suite))}, run {html.escape(str(gate.run_key))}; "
        f"{len(gate.failed)} failed, {len(gate.warnings)} warning(s) of {gate.evaluated} "
        f"expectations</p><p><small>parameters: {params}</small></p><ul>{items}</ul></div>"
    )
    marker = page.find("<body")
    if marker < 0:
        return banner + page
    insert_at = page.find(">", marker) + 1
    return page[:insert_at] + banner + page[insert_at:]


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def _write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file to a local folder or, through Hadoop, to an object store."""
    if _is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return
    fs, hadoop_path = _hadoop(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


def _append_line(spark: SparkSession, path: str, line: str) -> None:
    """Append one line; locally one O_APPEND write, so concurrent gates do not interleave.

    Object stores cannot append: the index is read and rewritten, so concurrent gates on
    an object store may drop an index line (the report folders stay complete).
    """
    if _is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as handle:
            handle.write(line + "\n")
        return
    fs, hadoop_path = _hadoop(spark, path)
    existing = ""
    if fs.exists(hadoop_path):
        existing = "\n".join(str(r.value) for r in spark.read.text(path).collect()) + "\n"
    _write_text(spark, path, existing + line + "\n")


def _hadoop(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path  # type: ignore[union-attr]


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(_jsonable(value), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
