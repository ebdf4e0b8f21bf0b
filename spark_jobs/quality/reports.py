"""Validation reports: the HTML page and JSON result of a gate, and the reports index.

Every validation leaves, under ``<root>/_reports/<suite>/<run_key>/<validated_at>/``,
``report.html`` (rendered here from the GX result, every value that came from the data
or the suite escaped) and ``result.json`` (GX's result), and one line in
``<root>/_reports/index.jsonl``, which the Airflow plugin lists. Files are written
through ``spark_jobs.storage.files``, local folders and object stores alike.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping
from typing import Any

from spark_jobs.catalog import Table, join_path, reports_path
from spark_jobs.quality.results import GateResult, describe_failure, failure_entry, short
from spark_jobs.quality.suites import SEVERITY_WARN, TRAINING_SET_SUITE, severity
from spark_jobs.storage import files

INDEX_FILE = "index.jsonl"
REPORT_FILE = "report.html"
RESULT_FILE = "result.json"

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


def write_report(
    root: str,
    table: Table,
    gate: GateResult,
    gx_result: Any,
    values: Mapping[str, Any],
    run_dates: Mapping[str, Any],
    validated_at: dt.datetime,
) -> None:
    """The HTML page and GX's JSON result under the reports folder; the index line waits.

    Sets ``gate.report_path`` and ``gate.result_path``; the index line goes to
    ``gate.pending_index_line`` for ``append_index_line`` to append.
    """
    stamp = validated_at.strftime("%Y%m%dT%H%M%S%fZ")
    # Training sets share a suite; their reports are kept apart by table.
    folder = table.suite_name if gate.suite == TRAINING_SET_SUITE else gate.suite
    relative = "/".join([folder or table.suite_name, gate.run_key or "", stamp])
    base = reports_path(root)
    page = report_page(gx_result)
    files.write_text_atomic(join_path(base, relative, REPORT_FILE), with_banner(page, gate, values))
    files.write_text_atomic(
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


def append_index_line(root: str, gate: GateResult) -> None:
    """Add a validation's line to the reports index (once), which the plugin lists.

    The index is read and written again whole, atomically: a reader sees it before or
    after the line, never half a line. Two gates appending at the same moment could
    drop one line (the report folders stay complete); on a local root the writer lock
    (``spark_jobs.storage.locking``) lets only one job at a time gate and publish.
    """
    if gate.pending_index_line is None:
        return
    path = join_path(reports_path(root), INDEX_FILE)
    existing = files.read_text(path) or ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    files.write_text_atomic(path, existing + gate.pending_index_line + "\n")
    gate.pending_index_line = None


def report_page(gx_result: Any) -> str:
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
    entry = failure_entry(config, outcome, severity(config))
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
    return html.escape(short(value, limit))


def with_banner(page: str, gate: GateResult, values: Mapping[str, Any]) -> str:
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
        ", ".join(f"{k}={short(v)}" for k, v in values.items() if k != "currencies")
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
