"""The operations report: did each day build, is it fresh, and why was a run slow.

    python -m spark_jobs.ops.report --root lakehouse --days 7      # or: make report

Reads ``ops.stage_runs`` without Spark (``storage.delta_rows``), so it answers in well
under a second. The Airflow UI page (plugins/lakehouse_reports.py, ``/ops``) draws the
same figures; both take them from ``load_runs`` and ``diagnose`` here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql.types import MapType

from spark_jobs.catalog import OPS_STAGE_RUNS
from spark_jobs.cli import EXIT_BAD_INPUT, resolve_root
from spark_jobs.storage import delta_rows

STAGE_ORDER = ("bronze", "silver", "gold_daily", "features")
# A stage run is slow when it took this much longer than its median over the window.
SLOW_FACTOR = 1.25


def load_runs(root: str, days: int | None = None) -> list[dict[str, Any]]:
    """The stage runs of the last ``days`` logical dates that have runs (all if None)."""
    runs = [_with_maps(row) for row in delta_rows.read_rows(OPS_STAGE_RUNS.path(root))]
    if days is not None and runs:
        newest = max(r["end_date"] for r in runs)
        first = newest - dt.timedelta(days=days - 1)
        runs = [r for r in runs if r["end_date"] >= first]
    return sorted(runs, key=lambda r: (r["started_at"], _stage_rank(r["stage"])))


def latest_per_day(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (logical end date, stage): the run that ended last, in date and stage order."""
    latest: dict[tuple[dt.date, str], dict[str, Any]] = {}
    for run in runs:
        key = (run["end_date"], run["stage"])
        if key not in latest or run["ended_at"] >= latest[key]["ended_at"]:
            latest[key] = run
    return [latest[k] for k in sorted(latest, key=lambda k: (k[0], _stage_rank(k[1])))]


def last_run(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stage runs of the newest DAG run (by hand: the newest runs of its dates).

    Stages run by hand have no run in common, so there the last run is the latest run of
    each stage over the same dates as the newest one.
    """
    if not runs:
        return []
    newest = max(runs, key=lambda r: r["ended_at"])
    if newest["dag_run_id"]:
        return [r for r in runs if r["dag_run_id"] == newest["dag_run_id"]]
    dates = (newest["start_date"], newest["end_date"])
    by_stage: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run["dag_run_id"] or (run["start_date"], run["end_date"]) != dates:
            continue
        if run["stage"] not in by_stage or run["ended_at"] > by_stage[run["stage"]]["ended_at"]:
            by_stage[run["stage"]] = run
    return list(by_stage.values())


@dataclass(frozen=True)
class Diagnosis:
    """Why a stage run took as long as it did, in one line."""

    run: dict[str, Any]
    usual_s: float | None
    cause: str

    def line(self) -> str:
        usual = f" (usually {self.usual_s:.1f} s)" if self.usual_s else ""
        return (
            f"{self.run['stage']:<11} {self.run['end_date']}  "
            f"{self.run['duration_s']:7.1f} s{usual}: {self.cause}"
        )


def diagnose(run: dict[str, Any], history: Sequence[dict[str, Any]]) -> Diagnosis:
    """Compare a run with the other runs of its stage: volume, skew or a slow commit."""
    peers = [
        r
        for r in history
        if r["stage"] == run["stage"] and r is not run and r["status"] == "published"
    ]
    usual = _median(peers, "duration_s")
    if run["status"] != "published":
        return Diagnosis(run, usual, f"{run['status']}: {run.get('error') or 'see the task log'}")
    if usual is None:
        return Diagnosis(run, None, "no earlier runs of this stage to compare with")
    if run["duration_s"] <= usual * SLOW_FACTOR:
        return Diagnosis(run, usual, "as usual")
    rows, usual_rows = _rows(run), _median_of([_rows(r) for r in peers])
    if rows and usual_rows and rows >= 1.5 * usual_rows:
        return Diagnosis(run, usual, f"volume: {rows / usual_rows:.1f}x its usual rows")
    skew, usual_skew = run.get("skew_ratio"), _median(peers, "skew_ratio")
    if skew and skew >= 3 and (usual_skew is None or skew >= 1.5 * usual_skew):
        return Diagnosis(
            run,
            usual,
            f"skew: user {run['hot_key']} holds {run['hot_key_rows']:,} rows, the largest "
            f"partition is {skew:.1f}x the median",
        )
    for part, what in (("publish", "slow commit"), ("gate", "slow gate"), ("build", "slow build")):
        took, usual_part = run.get(f"{part}_s"), _median(peers, f"{part}_s")
        if took and usual_part and took >= 2 * usual_part:
            return Diagnosis(
                run, usual, f"{what}: {part} took {took:.1f} s, usually {usual_part:.1f} s"
            )
    return Diagnosis(
        run, usual, "slower at its usual volume and skew: open its Spark event log (make history)"
    )


def format_report(runs: Sequence[dict[str, Any]], days: int) -> str:
    """The terminal report: one line per day and stage, then the last run's slowest stages."""
    if not runs:
        return (
            f"no stage runs recorded in {OPS_STAGE_RUNS.name} yet: run the pipeline "
            "(make demo, or a purchases_daily DAG run) first"
        )
    lines = [f"stage runs of the last {days} logical date(s) ({len(runs)} runs)", ""]
    lines.append(
        f"{'date':<10}  {'stage':<11} {'status':<17} {'secs':>7} {'rows out':>9} "
        f"{'quar %':>6} {'fresh h':>7} {'skew':>5} {'band':>5} {'gate':>9}  drift"
    )
    for run in latest_per_day(runs):
        lines.append(
            f"{run['end_date']!s:<10}  {run['stage']:<11} {run['status']:<17} "
            f"{run['duration_s']:7.1f} {_num(run['rows_out']):>9} "
            f"{_pct(quarantine_share(run)):>6} {_hours(run['freshness_lag_s']):>7} "
            f"{_ratio(run['skew_ratio']):>5} {_band(run.get('row_band_position')):>5} "
            f"{_gate(run):>9}  {_drift(run.get('feature_psi'))}".rstrip()
        )
    latest = sorted(last_run(runs), key=lambda r: -r["duration_s"])
    if latest:
        lines += ["", f"slowest stages of the last run ({run_name(latest[0])}):"]
        lines += ["  " + diagnose(run, runs).line() for run in latest[:3]]
    return "\n".join(lines)


def quarantine_share(run: dict[str, Any]) -> float | None:
    """Quarantined rows as a share of the rows a stage read (silver only)."""
    if run.get("rows_quarantined") is None or not run.get("rows_in"):
        return None
    return run["rows_quarantined"] / run["rows_in"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spark_jobs.ops.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--root", default=None, help="lakehouse root (default: $LAKEHOUSE_ROOT)")
    parser.add_argument("--days", type=_positive, default=7, help="logical dates (default 7)")
    args = parser.parse_args(argv)
    try:
        root = resolve_root(args.root)
        runs = load_runs(root, args.days)
    except (delta_rows.UnsupportedTable, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_report(runs, args.days))
    return 0


_MAPS = tuple(f.name for f in OPS_STAGE_RUNS.schema.fields if isinstance(f.dataType, MapType))


def _with_maps(row: dict[str, Any]) -> dict[str, Any]:
    """Map columns as dicts (Parquet hands them over as lists of pairs)."""
    for name in _MAPS:
        if isinstance(row.get(name), list):
            row[name] = dict(row[name])
    return row


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}: expected a whole number >= 1")
    return int(value)


def _stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _rows(run: dict[str, Any]) -> float | None:
    value = run.get("rows_in") if run.get("rows_in") is not None else run.get("rows_out")
    return None if value is None else float(value)


def _median(runs: Sequence[dict[str, Any]], column: str) -> float | None:
    return _median_of([r.get(column) for r in runs])


def _median_of(values: Sequence[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def run_name(run: dict[str, Any]) -> str:
    return run["dag_run_id"] or f"run {run['run_key']}"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _band(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _drift(psi: dict[str, float] | None) -> str:
    """The most drifted feature and its index, e.g. ``net_usd_30d 0.31``."""
    if not psi:
        return ""
    column, index = max(psi.items(), key=lambda item: item[1])
    return f"{column} {index:.2f}"


def _gate(run: dict[str, Any]) -> str:
    if run["gate_passed"] is None:
        return "-"
    verdict = "pass" if run["gate_passed"] else "FAIL"
    return f"{verdict} {run['gate_warnings'] or 0}w"


if __name__ == "__main__":
    sys.exit(main())
