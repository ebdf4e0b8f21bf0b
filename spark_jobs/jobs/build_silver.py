"""Build silver.purchases, silver.quarantine and silver.changes from bronze.

For the landing dates [start, end]: every bronze row is validated (reason codes in
spark_jobs/reasons.py, rules in docs/SILVER.md), typed, converted to USD, and either
quarantined or offered to silver, where one record per (event_date, event_id) wins
against this run's rows and the rows other landing dates already put in the same
event-date partitions. Late events land in their own event_date partition.

Publishing rewrites exactly the event-date partitions the run touches (``replaceWhere``
on ``event_date``), with their full new content: rows of these landing dates replace
their previous version, rows of other landing dates stay unless a record of this run
beats them. Quarantine and changes are replaced per landing date. So a rerun gives the
same tables, a range equals its days run in order, and a kill between steps heals on
rerun. After publishing, the nothing-lost accounting must balance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from spark_jobs.catalog import (
    BRONZE_LANDING_LOG,
    BRONZE_PURCHASES,
    SILVER_CHANGES,
    SILVER_CHANGES_SCHEMA,
    SILVER_PURCHASES,
    SILVER_PURCHASES_SCHEMA,
    SILVER_QUARANTINE,
    event_dates_predicate,
    landing_filter,
    landing_predicate,
    staging_path,
)
from spark_jobs.cli import DateRange, UserError, job_parser, run_cli
from spark_jobs.jobs import run_stage_job
from spark_jobs.ops import metrics
from spark_jobs.quality import wap
from spark_jobs.quality.accounting import AccountingError, check_accounting, format_accounting
from spark_jobs.storage import delta
from spark_jobs.transforms.fx import (
    DEFAULT_MAX_STALENESS_DAYS,
    REPORTING_CURRENCY,
    daily_fx_rates,
    fx_rates_for,
    load_currencies,
)
from spark_jobs.transforms.silver import (
    SILVER_COLUMNS,
    other_landings_changes,
    pick_winners,
    quarantined,
    rebuilt_partitions,
    silver_changes,
    touched_event_dates,
    valid_purchases,
    validate,
)

STAGE = "silver"
log = logging.getLogger(__name__)

EXIT_ACCOUNTING_FAILED = 1
# The tables a build reads: a commit to any of them after the build makes it stale.
INPUTS = (BRONZE_PURCHASES, BRONZE_LANDING_LOG, SILVER_PURCHASES, SILVER_CHANGES)


def read_bronze(spark: SparkSession, root: str, days: DateRange) -> DataFrame:
    """Bronze rows of the landing dates; UserError when bronze never ingested one of them."""
    path = BRONZE_PURCHASES.path(root)
    log_path = BRONZE_LANDING_LOG.path(root)
    wap.require_finished(spark, root, [BRONZE_PURCHASES, BRONZE_LANDING_LOG])
    if not delta.is_delta(spark, path) or not delta.is_delta(spark, log_path):
        raise UserError(
            f"no bronze table at {path}: run ingest_bronze --start {days.start} "
            f"--end {days.end} first"
        )
    ingested = {
        r["_landing_date"]
        for r in spark.read.format("delta")
        .load(log_path)
        .where(landing_filter(days))
        .select("_landing_date")
        .collect()
    }
    missing = [str(day) for day in days.days() if day not in ingested]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise UserError(
            f"bronze has not ingested landing date(s) {shown}: run ingest_bronze for them first"
        )
    return spark.read.format("delta").load(path).where(landing_filter(days))


def _read_optional(spark: SparkSession, path: str, schema: StructType) -> DataFrame:
    current = delta.read_if_exists(spark, path)
    return spark.createDataFrame([], schema) if current is None else current


def build(spark: SparkSession, root: str, days: DateRange, max_staleness_days: int) -> None:
    """Stage silver.purchases (the touched partitions), silver.quarantine and silver.changes."""
    versions = wap.input_versions(spark, root, INPUTS)
    bronze = read_bronze(spark, root, days)
    currencies = load_currencies()
    # Only records in another currency than USD need a rate. When the reference rates do
    # not cover their dates, fx_rates_for stops the run here, before anything is staged.
    converted = bronze.where(
        F.col("currency").isin(*currencies) & (F.col("currency") != REPORTING_CURRENCY)
    )
    fx_dates = [r["event_date"] for r in touched_event_dates(converted).collect()]
    validated = validate(
        bronze,
        currencies,
        daily_fx_rates(fx_rates_for(spark, fx_dates, max_staleness_days), max_staleness_days),
        max_staleness_days,
    )
    previous_changes = _read_optional(
        spark, SILVER_CHANGES.path(root), SILVER_CHANGES_SCHEMA
    ).where(landing_filter(days))
    # Partitions to rebuild: where this run's rows may land, and where its previous
    # version put rows (they must go if the records changed or vanished).
    touched = {r["event_date"] for r in touched_event_dates(bronze).collect()}
    touched |= {r["event_date"] for r in previous_changes.select("event_date").distinct().collect()}
    silver = _read_optional(spark, SILVER_PURCHASES.path(root), SILVER_PURCHASES_SCHEMA)
    existing = silver.where(F.col("event_date").isin(sorted(touched)) & ~landing_filter(days))
    log.info(
        "landing dates %s..%s touch %d event date(s)%s",
        days.start,
        days.end,
        len(touched),
        f" from {min(touched)} to {max(touched)}" if touched else "",
    )
    winners = pick_winners(valid_purchases(validated), existing)
    wap.stage_outputs(
        spark,
        root,
        days.key,
        {SILVER_PURCHASES: winners, SILVER_QUARANTINE: quarantined(validated)},
    )
    staged = spark.read.format("delta").load(staging_path(root, SILVER_PURCHASES, days.key))
    previous_others = _read_optional(spark, SILVER_CHANGES.path(root), SILVER_CHANGES_SCHEMA).where(
        F.col("event_date").isin(sorted(touched)) & ~landing_filter(days)
    )
    others = other_landings_changes(rebuilt_partitions(staged, existing), previous_others)
    changes = silver_changes(staged, previous_changes).unionByName(
        others.where(~landing_filter(days))
    )
    wap.stage_outputs(spark, root, days.key, {SILVER_CHANGES: changes})
    wap.record_inputs(spark, root, days.key, SILVER_PURCHASES, versions)


class StagedEventDates:
    """The event dates the run's staged purchases and changes name, asked once per publish.

    Both silver publishers need the same set (the partitions purchases rewrites, the
    pairs changes replaces); the staged rows do not change between their commits.
    """

    def __init__(self, root: str, days: DateRange) -> None:
        self.root = root
        self.days = days
        self._dates: list[dt.date] | None = None

    def get(self, spark: SparkSession) -> list[dt.date]:
        if self._dates is None:
            purchases = wap.read_staged(spark, self.root, SILVER_PURCHASES, self.days.key)
            changes = wap.read_staged(spark, self.root, SILVER_CHANGES, self.days.key)
            self._dates = sorted(
                r["event_date"]
                for r in purchases.select("event_date")
                .union(changes.select("event_date"))
                .distinct()
                .collect()
            )
        return self._dates


def replace_touched_partitions(
    root: str, days: DateRange, touched: StagedEventDates
) -> wap.Publisher:
    """A publisher rewriting the event-date partitions the run's staged rows and changes name.

    Each partition gets the run's rows plus the rows other landing dates hold there that
    the run's rows do not replace; the run's previous rows go. A partition whose rows of
    these landing dates all went away has no staged row but still has a change.
    """

    def publish(spark: SparkSession, staged: DataFrame, path: str) -> None:
        event_dates = touched.get(spark)
        exists = delta.is_delta(spark, path)
        if not event_dates:
            if not exists:  # an empty table, so readers find one
                staged.select(*SILVER_COLUMNS).write.format("delta").partitionBy(
                    *SILVER_PURCHASES.partition_by
                ).save(path)
            log.info("no event date touched: %s unchanged", SILVER_PURCHASES.name)
            return
        current = _read_optional(spark, path, SILVER_PURCHASES_SCHEMA)
        others = current.where(F.col("event_date").isin(event_dates) & ~landing_filter(days))
        (
            rebuilt_partitions(staged, others)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", event_dates_predicate(event_dates))
            .partitionBy(*SILVER_PURCHASES.partition_by)
            .save(path)
        )

    return publish


def replace_changes(root: str, days: DateRange, touched: StagedEventDates) -> wap.Publisher:
    """A publisher for silver.changes: the run's landing dates, and the other landing
    dates' pairs on the event dates the run rebuilt (a run can take records over from
    them, and their changes must then say so, as if they had never held them).
    """

    def publish(spark: SparkSession, staged: DataFrame, path: str) -> None:
        event_dates = touched.get(spark)
        predicate = landing_predicate(days)
        if event_dates:
            predicate = f"({predicate}) OR {event_dates_predicate(event_dates)}"
        wap.replace_where(predicate, SILVER_CHANGES)(spark, staged, path)

    return publish


def outputs(root: str, days: DateRange) -> list[wap.Output]:
    """What the silver stage publishes; purchases first, so changes never run ahead of it."""
    predicate = landing_predicate(days)
    touched = StagedEventDates(root, days)
    return [
        wap.Output(SILVER_PURCHASES, replace_touched_partitions(root, days, touched)),
        wap.Output(SILVER_QUARANTINE, wap.replace_where(predicate, SILVER_QUARANTINE)),
        wap.Output(SILVER_CHANGES, replace_changes(root, days, touched), gated=False),
    ]


def publish(spark: SparkSession, root: str, days: DateRange) -> wap.StageResult:
    """Gate the staged silver outputs, publish them, then check that nothing was lost.

    Raises AccountingError (with the per-date counts) when the books do not balance.
    """
    gate_params = {"start": str(days.start), "end": str(days.end)}
    result = wap.audit_and_publish(spark, root, STAGE, days.key, outputs(root, days), gate_params)
    wap.fault_point("accounting")
    rows = check_accounting(spark, root, days.start, days.end)
    log.info("nothing lost, per landing date:\n%s", format_accounting(rows))
    metrics.note(
        rows_in=sum(r.bronze for r in rows), rows_duplicate=sum(r.duplicates for r in rows)
    )
    return result


def non_negative_int(value: str) -> int:
    """A whole number >= 0, for argparse."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"invalid value {value!r}: expected a whole number >= 0")
    return number


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m spark_jobs.jobs.build_silver``."""
    parser = job_parser(
        "build_silver",
        "Build silver.purchases (typed, deduplicated, USD), silver.quarantine and "
        "silver.changes from the bronze rows of landing dates [--start, --end].",
        steps="build: stage the outputs; publish: gate, publish and check the staged "
        "outputs; all: both",
    )
    parser.add_argument(
        "--fx-max-staleness-days",
        type=non_negative_int,
        default=DEFAULT_MAX_STALENESS_DAYS,
        help="a day without a reference rate uses the latest earlier one at most this many "
        f"days old, else the record is quarantined NO_FX_RATE (default: "
        f"{DEFAULT_MAX_STALENESS_DAYS})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the silver stage for the dates on the command line; returns the exit code."""
    args = parser().parse_args(argv)

    def steps(spark: SparkSession, root: str, days: DateRange) -> int:
        if args.step in ("all", "build"):
            build(spark, root, days, args.fx_max_staleness_days)
        if args.step == "publish" and (
            changed := wap.changed_inputs(spark, root, days.key, SILVER_PURCHASES, INPUTS)
        ):
            log.warning("inputs changed since the build step (%s): building again", changed)
            build(spark, root, days, args.fx_max_staleness_days)
        if args.step in ("all", "publish"):
            try:
                publish(spark, root, days)
            except AccountingError as exc:
                metrics.note(status="accounting_failed", error=str(exc).splitlines()[0])
                print(f"accounting failed: {exc}", file=sys.stderr)
                return EXIT_ACCOUNTING_FAILED
        return 0

    return run_stage_job("build_silver", STAGE, args, steps)


if __name__ == "__main__":
    run_cli(main)
