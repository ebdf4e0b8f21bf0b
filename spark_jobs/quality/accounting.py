"""Nothing lost: every bronze row is in silver, in quarantine, or a counted duplicate.

Per landing date: bronze rows == silver rows landed that date + quarantined rows +
duplicates dropped, where a duplicate is a valid bronze row whose event (event_date,
event_id) is in silver under another winner. Silver is read only in the event-date
partitions the checked landing dates touch, so the check's cost follows the days
checked, not the length of history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    BRONZE_PURCHASES,
    SILVER_CHANGES,
    SILVER_PURCHASES,
    SILVER_QUARANTINE,
    Table,
)
from spark_jobs.storage import delta
from spark_jobs.transforms.silver import parse_event_time, utc_date

EVENT_KEY = ["event_date", "event_id"]


class AccountingError(RuntimeError):
    """Rows went missing (or appeared) between bronze and silver + quarantine."""


@dataclass(frozen=True)
class AccountingRow:
    """The row counts of one landing date."""

    landing_date: dt.date
    bronze: int
    silver: int  # silver rows whose _landing_date is this date
    quarantine: int
    duplicates: int  # valid rows whose event is in silver under another winner
    unaccounted: int = 0  # valid rows whose event is nowhere in silver
    unexplained: int = 0  # silver rows of this date with no bronze row behind them

    @property
    def balanced(self) -> bool:
        """True when bronze == silver + quarantine + duplicates and nothing is unexplained."""
        return (
            self.bronze == self.silver + self.quarantine + self.duplicates
            and self.duplicates >= 0
            and self.unaccounted == 0
            and self.unexplained == 0
        )


def _landings(frame: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    return frame.where(F.col("_landing_date").between(F.lit(start), F.lit(end)))


def _read(spark: SparkSession, root: str, table: Table) -> DataFrame | None:
    return delta.read_if_exists(spark, table.path(root))


def _counts(**frames: DataFrame) -> dict[str, dict[dt.date, int]]:
    """Rows per landing date of each frame, all counted in one query."""
    return _by_landing_date(frames, _grouped_counts(frames))


def _by_landing_date(
    frames: dict[str, DataFrame], grouped: dict[tuple[str, dt.date | None, dt.date | None], int]
) -> dict[str, dict[dt.date, int]]:
    """The grouped counts summed per frame and landing date (event dates folded in)."""
    counts: dict[str, dict[dt.date, int]] = {name: {} for name in frames}
    for (name, landing_date, _), n in grouped.items():
        if landing_date is not None:
            counts[name][landing_date] = counts[name].get(landing_date, 0) + n
    return counts


def _grouped_counts(
    frames: dict[str, DataFrame], by_event_date: Sequence[str] = ()
) -> dict[tuple[str, dt.date | None, dt.date | None], int]:
    """Rows per (frame, landing date, event date) of every frame, in one query.

    Only the frames named in ``by_event_date`` are split by event date (their
    ``event_date`` column); the others count under an event date of None.
    """
    tagged = [
        frame.select(
            F.lit(name).alias("_frame"),
            "_landing_date",
            (F.col("event_date") if name in by_event_date else F.lit(None))
            .cast("date")
            .alias("event_date"),
        )
        for name, frame in frames.items()
    ]
    union = tagged[0]
    for frame in tagged[1:]:
        union = union.unionByName(frame)
    grouped = union.groupBy("_frame", "_landing_date", "event_date").agg(
        F.count(F.lit(1)).alias("n")
    )
    return {
        (row["_frame"], row["_landing_date"], row["event_date"]): int(row["n"])
        for row in grouped.collect()
    }


def compute_accounting(
    spark: SparkSession, root: str, start: dt.date, end: dt.date
) -> list[AccountingRow]:
    """The counts of every landing date in [start, end] (zeros for a table not there yet)."""
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    bronze = _read(spark, root, BRONZE_PURCHASES)
    quarantine = _read(spark, root, SILVER_QUARANTINE)
    silver = _read(spark, root, SILVER_PURCHASES)
    changes = _read(spark, root, SILVER_CHANGES)
    if bronze is None:
        return [AccountingRow(day, 0, 0, 0, 0) for day in days]
    bronze = _landings(bronze, start, end)
    quarantined_lines = (
        _landings(quarantine, start, end).select("_landing_date", "_raw")
        if quarantine is not None
        else None
    )
    # Whether a line is quarantined depends only on the line and its landing date, so
    # bronze rows are matched to quarantine rows on (_landing_date, _raw).
    kept = bronze
    if quarantined_lines is not None:
        kept = kept.join(
            F.broadcast(quarantined_lines.distinct()), ["_landing_date", "_raw"], "left_anti"
        )
    kept = kept.select(
        "_landing_date",
        "event_id",
        utc_date(parse_event_time(F.col("event_time"))).alias("event_date"),
    ).cache()
    try:
        # One query for the landed counts and the event dates they touch (silver is
        # then read in those partitions only).
        landed_frames = {"bronze": bronze, "kept": kept}
        if quarantined_lines is not None:
            landed_frames["quarantine"] = quarantined_lines
        if changes is not None:
            landed_frames["changes"] = _landings(changes, start, end).select(
                "_landing_date", "event_date"
            )
        with_event_dates = ("kept", "changes")
        grouped = _grouped_counts(landed_frames, by_event_date=with_event_dates)
        event_dates = {
            event_date
            for (name, _, event_date) in grouped
            if name in with_event_dates and event_date is not None
        }
        counts = _by_landing_date(landed_frames, grouped)
        bronze_rows, kept_rows = counts["bronze"], counts["kept"]
        quarantine_rows = counts.get("quarantine", {})
        present_rows: dict[dt.date, int] = {}
        silver_rows: dict[dt.date, int] = {}
        unexplained_rows: dict[dt.date, int] = {}
        if silver is not None and event_dates:
            touched = silver.where(F.col("event_date").isin(sorted(event_dates))).select(
                "event_date", "event_id", "_landing_date"
            )
            landed = _landings(touched, start, end)
            silver_counts = _counts(
                present=kept.join(touched.select(*EVENT_KEY), EVENT_KEY, "left_semi"),
                silver=landed,
                unexplained=landed.join(kept, [*EVENT_KEY, "_landing_date"], "left_anti"),
            )
            present_rows = silver_counts["present"]
            silver_rows = silver_counts["silver"]
            unexplained_rows = silver_counts["unexplained"]
    finally:
        kept.unpersist()
    return [
        AccountingRow(
            landing_date=day,
            bronze=bronze_rows.get(day, 0),
            silver=silver_rows.get(day, 0),
            quarantine=quarantine_rows.get(day, 0),
            duplicates=present_rows.get(day, 0) - silver_rows.get(day, 0),
            unaccounted=kept_rows.get(day, 0) - present_rows.get(day, 0),
            unexplained=unexplained_rows.get(day, 0),
        )
        for day in days
    ]


def format_accounting(rows: Sequence[AccountingRow]) -> str:
    """The per-date counts as a small text table, for logs and error messages."""
    header = (
        "landing_date",
        "bronze",
        "silver",
        "quarantine",
        "duplicates",
        "unaccounted",
        "unexplained",
        "ok",
    )
    body = [
        (
            str(r.landing_date),
            str(r.bronze),
            str(r.silver),
            str(r.quarantine),
            str(r.duplicates),
            str(r.unaccounted),
            str(r.unexplained),
            "yes" if r.balanced else "NO",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    )


def check_accounting(
    spark: SparkSession, root: str, start: dt.date, end: dt.date
) -> list[AccountingRow]:
    """The counts of every landing date in [start, end]; raises AccountingError if unbalanced.

    The error message carries the whole per-date table, unbalanced dates marked NO.
    """
    rows = compute_accounting(spark, root, start, end)
    if not all(r.balanced for r in rows):
        bad = [str(r.landing_date) for r in rows if not r.balanced]
        raise AccountingError(
            f"rows lost or unexplained for landing date(s) {', '.join(bad)}: bronze must equal "
            "silver + quarantine + duplicates, with every duplicate's event in silver\n"
            + format_accounting(rows)
        )
    return rows
