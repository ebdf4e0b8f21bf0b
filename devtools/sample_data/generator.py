"""``generate``: landing files for a range of dates, and a summary of what was written."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from pyspark.sql import SparkSession

from devtools.sample_data import writer
from devtools.sample_data.plan import missing_days, plan_days
from devtools.sample_data.records import purchase_lines
from devtools.sample_data.scenario import Rates
from devtools.sample_data.summary import (
    DaySummary,
    GenerationSummary,
    day_summary,
    purchase_counts,
)
from spark_jobs.cli import DateRange, UserError


def generate(
    spark: SparkSession,
    root: str,
    start: dt.date,
    end: dt.date,
    users: int,
    seed: int,
    *,
    defect_rate: float = Rates.defect_rate,
    late_rate: float = Rates.late_rate,
    retry_rate: float = Rates.retry_rate,
    refund_rate: float = Rates.refund_rate,
    events_per_day: int | None = None,
    files_per_day: int = 2,
    compress: bool = False,
    skip_dates: Sequence[dt.date] | None = None,
    history_start: dt.date | None = None,
) -> GenerationSummary:
    """Write landing files for every date of [start, end] and return what was written.

    Each generated date's folder is replaced. ``events_per_day`` defaults to ``users``.
    ``skip_dates`` None means: with defects, the 9th day after ``history_start`` and
    every 30th after it get no folder; ``()`` means no missing day. Refunds and retries
    point at days from ``history_start`` (default ``start``) on, so generating a range
    in pieces with the same ``history_start`` gives the same files as in one go.
    """
    days = DateRange(start, end)
    rates = Rates(defect_rate, late_rate, retry_rate, refund_rate)
    history_start = history_start or start
    events_per_day = users if events_per_day is None else events_per_day
    validate(days, users, rates, events_per_day, files_per_day, skip_dates, history_start)
    began = time.monotonic()
    skipped = missing_days(history_start, end, rates, skip_dates)
    plans = plan_days(days, history_start, events_per_day, rates, files_per_day, skipped)
    scratch = writer.scratch_path(root, start, end)
    written: dict[tuple[int, int], str] = {}
    if plans:
        lines = purchase_lines(spark, plans, users, seed, rates)
        written = writer.render(spark, lines, plans, scratch, compress)
    counts = purchase_counts(spark, plans, seed, rates) if plans else {}
    by_date = {plan.landing_date: plan for plan in plans}
    empty_file = rates.defect_rate > 0
    summaries = []
    for day in days.days():
        plan = by_date.get(day)
        files = writer.replace_day(root, day, plan, written, compress, empty_file)
        if plan is None:
            summaries.append(DaySummary(day, missing=True))
        else:
            counted = counts.get(plan.index, (0, 0))
            summaries.append(day_summary(plan, files, empty_file, counted))
    writer.remove_scratch(scratch)
    return GenerationSummary(root, seed, users, tuple(summaries), time.monotonic() - began)


def validate(
    days: DateRange,
    users: int,
    rates: Rates,
    events_per_day: int,
    files_per_day: int,
    skip_dates: Sequence[dt.date] | None,
    history_start: dt.date,
) -> None:
    """Raise UserError, naming the option to fix, for arguments generate cannot honour."""
    if users <= 0:
        raise UserError(f"--users {users} must be a positive number of customers")
    if events_per_day <= 0:
        raise UserError(f"--events-per-day {events_per_day} must be positive")
    if files_per_day <= 0:
        raise UserError(f"--files-per-day {files_per_day} must be positive")
    for name, rate in vars(rates).items():
        if not 0 <= rate < 1:
            raise UserError(f"--{name.replace('_', '-')} {rate} must be in [0, 1), e.g. 0.01")
    if history_start > days.start:
        raise UserError(
            f"--history-start {history_start} is after --start {days.start}: it names "
            "the first day ever generated, on or before --start"
        )
    outside = sorted(d for d in skip_dates or () if not days.start <= d <= days.end)
    if outside:
        raise UserError(
            f"--skip-dates {outside[0]} is outside {days.start}..{days.end}: "
            "name only dates of the range"
        )
