"""Weekly upkeep of every Delta table: OPTIMIZE (compaction), then VACUUM.

VACUUM never removes a file that a recorded training set still needs: every manifest
under ``<root>/training/*/_manifest.json`` names the Delta version of each table it
read (``inputs``), of its own output and of a Delta spine. For a table with such a
version, the retention is stretched to cover that version's commit, and the table's
``delta.logRetentionDuration`` is raised so the log entries that time travel needs stay
too. Other tables keep the given retention (default 168 hours, Delta's own default).

    python -m spark_jobs.jobs.maintenance --root R [--start D] [--retention-hours 168] [--dry-run]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    ALL_TABLES,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    OPS_STAGE_RUNS,
    join_path,
    staging_root,
)
from spark_jobs.cli import UserError, job_parser, resolve_root, run_cli
from spark_jobs.quality import wap
from spark_jobs.session import build_spark
from spark_jobs.storage import delta
from spark_jobs.storage import files as storage
from spark_jobs.training import manifest as manifests

log = logging.getLogger("spark_jobs.jobs.maintenance")

MIN_RETENTION_HOURS = 168  # Delta refuses less by default: concurrent readers may need it
DEFAULT_LOG_RETENTION_DAYS = 30  # Delta's delta.logRetentionDuration default
# The log must outlive a protected version until the next weekly run and one more.
LOG_RETENTION_MARGIN_DAYS = 14
TRAINING_FOLDER = "training"
# The tables a training-set manifest records as inputs.
MANIFEST_INPUTS = (GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY)
# Staged rows older than this belong to a run that died: no gate waits two days.
DEFAULT_STAGING_MAX_AGE_HOURS = 48


@dataclass(frozen=True)
class TablePlan:
    """What maintenance does to one table."""

    path: str
    retention_hours: int
    protected_version: int | None  # oldest version a manifest needs
    log_retention_days: int | None  # set on the table when the default is too short


def protected_versions(manifests_found: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Oldest Delta version each table path must keep readable, over all manifests.

    A manifest protects the versions of its ``inputs``, its ``output`` and its spine
    when the spine is a Delta table.
    """
    oldest: dict[str, int] = {}

    def protect(entry: object) -> None:
        if not isinstance(entry, Mapping):
            return
        path, version = entry.get("path"), entry.get("delta_version")
        if isinstance(path, str) and isinstance(version, int) and version >= 0:
            key = path.rstrip("/")
            oldest[key] = min(version, oldest.get(key, version))

    for manifest in manifests_found:
        for entry in (manifest.get("inputs") or {}).values():
            protect(entry)
        protect(manifest.get("output"))
        protect(manifest.get("spine"))
    return oldest


def plan_table(
    path: str,
    protected_version: int | None,
    protected_commit_time: dt.datetime | None,
    now: dt.datetime,
    retention_hours: int,
) -> TablePlan:
    """Retention for one table: the default, stretched to cover a protected version.

    VACUUM deletes files removed more than ``retention`` hours ago; the files of version
    ``v`` are removed by commits after ``v``, so keeping everything removed since the
    commit of ``v`` keeps ``v`` whole. One extra hour absorbs the run's own duration.
    """
    if protected_version is None or protected_commit_time is None:
        return TablePlan(path, retention_hours, None, None)
    age = now - protected_commit_time
    needed_hours = math.ceil(age.total_seconds() / 3600) + 1
    needed_log_days = math.ceil(age.total_seconds() / 86400) + LOG_RETENTION_MARGIN_DAYS
    return TablePlan(
        path,
        max(retention_hours, needed_hours),
        protected_version,
        needed_log_days if needed_log_days > DEFAULT_LOG_RETENTION_DAYS else None,
    )


def read_all_manifests(spark: SparkSession, root: str) -> tuple[list[dict], list[str]]:
    """Every readable training-set manifest under ``<root>/training``, and the unreadable.

    An unreadable manifest (cut short, not JSON, another format) is reported and does not
    stop the run: ``plans`` keeps every version of the tables it may protect.
    """
    pattern = join_path(root, TRAINING_FOLDER, "*", manifests.MANIFEST_FILE)
    found, unreadable = [], []
    for path in storage.glob(pattern):
        try:
            found.append(manifests.read_manifest(spark, path))
        except UserError as exc:
            log.warning("unreadable training-set manifest, its tables keep every version: %s", exc)
            unreadable.append(path)
    return found, unreadable


def delta_tables(spark: SparkSession, root: str) -> list[str]:
    """Paths of the catalog's tables, ops.stage_runs and every training set that exist.

    ops.stage_runs grows by a small file per stage run: compacting it keeps the report
    and the UI page, which read every file, fast.
    """
    candidates = [t.path(root) for t in (*ALL_TABLES, OPS_STAGE_RUNS)]
    candidates += storage.glob(join_path(root, TRAINING_FOLDER, "*"))
    return [p for p in candidates if delta.is_delta(spark, p)]


def _normalise(path: str) -> str:
    return path.rstrip("/").removeprefix("file:")


def commit_time(spark: SparkSession, path: str, version: int) -> dt.datetime | None:
    """When ``version`` of the table was committed (UTC); None when its log entry is gone."""
    rows = (
        spark.sql(f"DESCRIBE HISTORY {delta.sql_name(path)}")
        .where(F.col("version") == version)
        .select("timestamp")
        .collect()
    )
    if not rows:
        return None
    stamp = rows[0]["timestamp"]
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp


def plans(
    spark: SparkSession, root: str, now: dt.datetime, retention_hours: int
) -> list[TablePlan]:
    """The maintenance plan of every Delta table under ``root``."""
    found, unreadable = read_all_manifests(spark, root)
    protected = {_normalise(p): v for p, v in protected_versions(found).items()}
    if unreadable:
        # What an unreadable manifest protected is unknown: keep every version of the
        # tables a training set can read, and of the sets whose manifest it is.
        for table in MANIFEST_INPUTS:
            protected[_normalise(table.path(root))] = 0
        for manifest_file in unreadable:
            protected[_normalise(manifest_file.rsplit("/", 1)[0])] = 0
    # Readers of a stage whose publish has not finished read the versions from before
    # it (wap.consistent_version): those must outlive this run's VACUUM too.
    by_name = {table.name: table for table in ALL_TABLES}
    for name, unfinished in wap.unfinished_tables(spark, root).items():
        if name not in by_name or unfinished.version < 0:
            continue
        log.warning(
            "%s: %s has not finished; keeping version %s for its readers (rerun that stage)",
            name,
            unfinished.describe(),
            unfinished.version,
        )
        key = _normalise(by_name[name].path(root))
        protected[key] = min(protected.get(key, unfinished.version), unfinished.version)
    result = []
    for path in delta_tables(spark, root):
        version = protected.get(_normalise(path))
        when = commit_time(spark, path, version) if version is not None else None
        if version is not None and when is None:
            log.warning(
                "%s: version %s named by a manifest has no log entry any more; "
                "that training set can no longer be rebuilt by time travel",
                path,
                version,
            )
        result.append(plan_table(path, version, when, now, retention_hours))
    return result


def stale_staging(root: str, now: dt.datetime, max_age_hours: int) -> list[str]:
    """Run folders under ``<root>/_staging`` untouched for more than ``max_age_hours``.

    A run's staging is ``_staging/<layer>/<table>/<run key>`` (training sets:
    ``_staging/training/<name>/<run key>``); published runs have removed theirs.
    """
    cutoff = now.replace(tzinfo=None) - dt.timedelta(hours=max_age_hours)
    stale = []
    for layer in storage.children(staging_root(root)):
        for table in storage.children(layer.path):
            stale += [
                run.path
                for run in storage.children(table.path)
                if run.modified_at < cutoff and _newest_change(run) < cutoff
            ]
    return stale


def _newest_change(entry: storage.Entry) -> dt.datetime:
    """The latest modification time of a folder and its direct children."""
    times = [entry.modified_at, *(c.modified_at for c in storage.children(entry.path))]
    return max(times)


def apply(spark: SparkSession, plan: TablePlan, optimize: bool) -> dict[str, object]:
    """OPTIMIZE and VACUUM one table as planned; returns what was done."""
    table = delta.sql_name(plan.path)
    done: dict[str, object] = {"path": plan.path, "retention_hours": plan.retention_hours}
    if plan.log_retention_days is not None:
        spark.sql(
            f"ALTER TABLE {table} SET TBLPROPERTIES "
            f"('delta.logRetentionDuration' = 'interval {plan.log_retention_days} days')"
        )
        done["log_retention_days"] = plan.log_retention_days
    if optimize:
        metrics = spark.sql(f"OPTIMIZE {table}").select("metrics").first()
        if metrics is not None:
            done["files_added"] = metrics["metrics"]["numFilesAdded"]
            done["files_removed"] = metrics["metrics"]["numFilesRemoved"]
    spark.sql(f"VACUUM {table} RETAIN {int(plan.retention_hours)} HOURS")
    return done


def _parser() -> argparse.ArgumentParser:
    parser = job_parser(
        "maintenance",
        "OPTIMIZE and VACUUM every Delta table, keeping every version a training-set "
        "manifest still needs.",
        # Maintenance is not about a date range; the date only names the run in logs.
        start_help="logical date of the run, for the log (optional)",
    )
    parser.add_argument(
        "--retention-hours",
        type=int,
        default=MIN_RETENTION_HOURS,
        help=f"VACUUM retention for tables no manifest protects (>= {MIN_RETENTION_HOURS})",
    )
    parser.add_argument(
        "--staging-max-age-hours",
        type=int,
        default=DEFAULT_STAGING_MAX_AGE_HOURS,
        help="remove staged rows of runs that died, once this old (default: "
        f"{DEFAULT_STAGING_MAX_AGE_HOURS})",
    )
    parser.add_argument("--skip-optimize", action="store_true", help="only VACUUM")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Plan and apply maintenance to every Delta table under --root; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.retention_hours < MIN_RETENTION_HOURS:
        raise UserError(
            f"--retention-hours {args.retention_hours} is below {MIN_RETENTION_HOURS}: "
            "readers of older snapshots could lose files; use 168 or more"
        )
    root = resolve_root(args.root)
    spark = build_spark(app_name="maintenance")
    # Retention is measured by Delta against the clock, so the plan is too.
    now = dt.datetime.now(dt.UTC)
    log.info("maintenance of %s (run %s)", root, args.start or "by hand")
    for folder in stale_staging(root, now, args.staging_max_age_hours):
        if args.dry_run:
            print(f"plan: remove stale staging {folder}")
            continue
        storage.delete_tree(folder)
        print(f"removed stale staging {folder}")
    for plan in plans(spark, root, now, args.retention_hours):
        if args.dry_run:
            guard = "" if plan.protected_version is None else f", keeps v{plan.protected_version}"
            print(f"plan: {plan.path}: retention {plan.retention_hours}h{guard}")
            continue
        done = apply(spark, plan, optimize=not args.skip_optimize)
        print(", ".join(f"{k}={v}" for k, v in done.items()))
    return 0


if __name__ == "__main__":
    run_cli(main)
