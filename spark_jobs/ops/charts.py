"""The operations page of the Airflow UI: ``ops.stage_runs`` as charts, drawn on the server.

Altair builds each chart as a Vega-Lite spec and vl-convert renders it to SVG, so the
page is plain HTML with inline SVG: it runs no script (the reports app's
Content-Security-Policy allows none) and needs nothing from the internet. Each data
point carries its values as an ``aria-label`` (Vega's SVG renderer), so a screen reader,
and the browser test, read the same numbers the chart shows.

Altair, pandas and vl-convert are imported when a page is drawn: they are the API
server's dependencies (the ``airflow`` extra), not a Spark job's.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from spark_jobs.ops import report

WIDTH, HEIGHT = 520, 180
_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Lakehouse operations</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
figure {{ margin: 0; }} figcaption {{ font-weight: bold; margin-bottom: .3rem; }}
li.slow {{ color: #a15c00; }} li.failed {{ color: #b00020; font-weight: bold; }}
</style></head>
<body><h1>Operations</h1>
<p>Lakehouse {root}: {count} stage runs over the last {days} logical date(s).
<a href="./ops?days=7">7 days</a> <a href="./ops?days=30">30 days</a>
<a href="./ops?days=90">90 days</a> <a href="./">validation reports</a></p>
{body}
</body></html>
"""


def runs_of(root: str, days: int) -> list[dict[str, Any]]:
    """The stage runs the page draws: those of the last ``days`` logical dates."""
    return report.load_runs(root, days)


def render(root: str, days: int) -> str:
    """The whole page: the last run's slowest stages, then one chart per question."""
    runs = runs_of(root, days)
    if not runs:
        body = (
            "<p>No stage runs recorded yet: every stage run writes a row to "
            "ops.stage_runs; run purchases_daily (or make demo) first.</p>"
        )
    else:
        body = _slowest(runs) + '<div class="charts">' + "".join(charts(runs)) + "</div>"
    return _PAGE.format(root=html.escape(root), count=len(runs), days=days, body=body)


def charts(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Each chart as a ``<figure>`` holding its SVG."""
    daily = report.latest_per_day(runs)
    per_stage = [_point(r) for r in daily]
    silver = [p for p in per_stage if p["stage"] == "silver"]
    figures = [
        ("Stage duration (s)", _lines(per_stage, "duration_s", "seconds")),
        ("Rows published", _lines(per_stage, "rows_out", "rows")),
        ("Quarantine share of silver's input (%)", _lines(silver, "quarantine_pct", "%")),
        ("Freshness lag at the day's end (h)", _lines(per_stage, "freshness_h", "hours")),
        ("Shuffle skew (largest / median partition)", _lines(per_stage, "skew_ratio", "x")),
        (
            "Row-count band position (0 expected, ±1 fail edge)",
            _lines(per_stage, "row_band_position", "position"),
        ),
        ("Feature drift (PSI vs the trailing 28 days)", _drift(daily)),
        ("Quarantined rows by reason", _stacked(daily, "quarantine_by_reason", "reason")),
        ("Published rows by days late", _stacked(daily, "late_by_days", "days late")),
    ]
    return [
        f"<figure><figcaption>{html.escape(title)}</figcaption>{_svg(spec)}</figure>"
        for title, spec in figures
        if spec is not None
    ]


def _slowest(runs: Sequence[dict[str, Any]]) -> str:
    latest = sorted(report.last_run(runs), key=lambda r: -r["duration_s"])[:3]
    items = []
    for run in latest:
        diagnosis = report.diagnose(run, runs)
        css = (
            "failed"
            if run["status"] != "published"
            else ("" if diagnosis.cause == "as usual" else "slow")
        )
        items.append(f'<li class="{css}">{html.escape(diagnosis.line())}</li>')
    name = html.escape(report.run_name(latest[0])) if latest else ""
    return f"<h2>Slowest stages of the last run ({name})</h2><ul>{''.join(items)}</ul>"


def _point(run: dict[str, Any]) -> dict[str, Any]:
    share = report.quarantine_share(run)
    lag = run.get("freshness_lag_s")
    return {
        "date": str(run["end_date"]),
        "stage": run["stage"],
        "status": run["status"],
        "duration_s": run["duration_s"],
        "rows_out": run.get("rows_out"),
        "quarantine_pct": None if share is None else round(100 * share, 2),
        "freshness_h": None if lag is None else round(lag / 3600, 2),
        "skew_ratio": run.get("skew_ratio"),
        "row_band_position": run.get("row_band_position"),
    }


def _lines(points: list[dict[str, Any]], column: str, unit: str) -> dict | None:
    import altair as alt
    import pandas as pd

    present = [p for p in points if p.get(column) is not None]
    if not present:
        return None
    frame = pd.DataFrame(present)[["date", "stage", "status", column]]
    chart = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=_day_axis(),
            y=alt.Y(f"{column}:Q", title=unit),
            color=alt.Color("stage:N", sort=list(report.STAGE_ORDER)),
            tooltip=["date:T", "stage:N", f"{column}:Q", "status:N"],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return chart.to_dict()


def _stacked(runs: list[dict[str, Any]], column: str, label: str) -> dict | None:
    import altair as alt
    import pandas as pd

    rows = [
        {"date": str(run["end_date"]), label: key, "rows": int(count)}
        for run in runs
        for key, count in _pairs(run.get(column))
        if count
    ]
    if not rows:
        return None
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=_day_axis(),
            y=alt.Y("rows:Q", title="rows"),
            color=alt.Color(f"{label}:N"),
            tooltip=["date:T", f"{label}:N", "rows:Q"],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return chart.to_dict()


def _drift(runs: list[dict[str, Any]]) -> dict | None:
    """One line per drift column of the features stage, with the warning limit as a rule."""
    import altair as alt
    import pandas as pd

    rows = [
        {"date": str(run["end_date"]), "feature": column, "psi": float(index)}
        for run in runs
        if run["stage"] == "features"
        for column, index in _pairs(run.get("feature_psi"))
        if index is not None
    ]
    if not rows:
        return None
    lines = (
        alt.Chart(pd.DataFrame(rows))
        .mark_line(point=True)
        .encode(
            x=_day_axis(),
            y=alt.Y("psi:Q", title="PSI"),
            color=alt.Color("feature:N"),
            tooltip=["date:T", "feature:N", "psi:Q"],
        )
    )
    limit = (
        alt.Chart(pd.DataFrame([{"limit": 0.25}])).mark_rule(strokeDash=[4, 4]).encode(y="limit:Q")
    )
    return (lines + limit).properties(width=WIDTH, height=HEIGHT).to_dict()


def _day_axis() -> Any:
    """Logical dates as days (not hours between two days)."""
    import altair as alt

    return alt.X("date:T", title="logical date", axis=alt.Axis(format="%b %d", tickCount="day"))


def _pairs(value: object) -> list[tuple[str, Any]]:
    """A Delta map column as read by pyarrow (a list of pairs) or by Spark (a dict)."""
    if not value:
        return []
    if isinstance(value, dict):
        return sorted(value.items())
    return [(str(k), v) for k, v in value]  # type: ignore[attr-defined]


def _svg(spec: dict) -> str:
    import vl_convert as vlc

    svg: str = vlc.vegalite_to_svg(spec)
    return svg
