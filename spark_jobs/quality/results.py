"""A gate's outcome and its wording: the GX result turned into short entries and lines.

Pure Python over the GX result objects; imports no Great Expectations itself.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spark_jobs.quality.suites import SEVERITY_WARN, severity

# Kwargs that name the domain of an expectation rather than what it expects.
_DOMAIN_KWARGS = frozenset(
    {"batch_id", "column", "column_list", "column_A", "column_B", "result_format"}
)


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
    # Figures the run metrics keep (``observations``): ``row_band_position``,
    # ``feature_psi`` ({column: index}).
    observations: dict[str, Any] = field(default_factory=dict)

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
        text += f"; e.g. {', '.join(short(v) for v in failure['examples'])}"
    return text


def classify(gx_result: Any) -> tuple[list[dict], list[dict]]:
    """Failed expectations split by severity, each as a small JSON-able dict."""
    failed: list[dict] = []
    warnings: list[dict] = []
    for result in gx_result.results:
        if result.success:
            continue
        config = result.expectation_config
        level = severity(config)
        info = result.exception_info or {}
        raised = info.get("raised_exception")
        entry = failure_entry(config, result.result or {}, level)
        if raised:
            # An expectation that cannot be evaluated proves nothing: it blocks.
            entry["exception"] = str(info.get("exception_message"))[:300]
            failed.append(entry)
        else:
            (warnings if level == SEVERITY_WARN else failed).append(entry)
    return failed, warnings


def observations(gx_result: Any, expected_rows: int | None, fail_ratio: float) -> dict[str, Any]:
    """The row-count band position and each drift column's index, from a GX result.

    The band position is log(staged rows / expected rows) over log(fail ratio): 0 is the
    expected size, -1 and +1 the edges of the fail band. No baseline, no position.
    """
    found: dict[str, Any] = {}
    psi: dict[str, float] = {}
    for result in gx_result.results:
        config = result.expectation_config
        observed = (result.result or {}).get("observed_value")
        if not isinstance(observed, int | float) or isinstance(observed, bool):
            continue
        if config.type == "expect_column_psi_to_be_at_most":
            psi[str(config.kwargs["column"])] = float(observed)
        elif (
            config.type == "expect_table_row_count_to_be_between"
            and expected_rows
            and fail_ratio > 1
            and "row_band_position" not in found
        ):
            ratio = max(int(observed), 1) / expected_rows
            found["row_band_position"] = round(math.log(ratio) / math.log(fail_ratio), 4)
    if psi:
        found["feature_psi"] = psi
    return found


def failure_entry(config: Any, outcome: Mapping[str, Any], level: str) -> dict[str, Any]:
    """An expectation's result as a small dict: what, on which columns, expected, observed."""
    kwargs = dict(config.kwargs)
    columns = kwargs.get("column") or kwargs.get("column_list")
    if kwargs.get("column_A"):
        columns = [kwargs["column_A"], kwargs["column_B"]]
    expected = ", ".join(
        f"{k}={short(v)}" for k, v in kwargs.items() if k not in _DOMAIN_KWARGS and v is not None
    )
    if "unexpected_count" in outcome:
        total = outcome.get("element_count") or 0
        share = outcome.get("unexpected_percent")
        observed = f"{outcome['unexpected_count']} of {total} rows unexpected"
        if share is not None:
            observed += f" ({share:.2f}%)"
    else:
        observed = short(outcome.get("observed_value"))
    return {
        "expectation": config.type,
        "columns": ", ".join(columns) if isinstance(columns, list) else columns,
        "severity": level,
        "description": config.description,
        "expected": expected,
        "observed": observed,
        "examples": [jsonable(v) for v in (outcome.get("partial_unexpected_list") or [])[:3]],
    }


def jsonable(value: Any) -> Any:
    """Dates as ISO text, tuples as lists, all the way down: ready for ``json.dumps``."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def short(value: Any, limit: int = 80) -> str:
    """A value as text (JSON unless a string), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(jsonable(value), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
