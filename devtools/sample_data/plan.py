"""How many records of each kind every landing day gets, and which output file holds them.

A day's records are numbered slots: first the purchase orders, then the refunds, the
retried deliveries and the broken records. Output file ``n`` of a day takes a contiguous
range of slots, and a fixed permutation spreads the kinds over the files.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from devtools.sample_data.columns import EPOCH
from devtools.sample_data.defects import DEFECT_KINDS
from devtools.sample_data.scenario import (
    MISSING_DAY_INDEX,
    MISSING_DAY_PERIOD,
    REFUND_LOOKBACK_DAYS,
    RETRY_LOOKBACK_DAYS,
    Rates,
    mean_items_per_order,
)
from spark_jobs.cli import DateRange

# Record kinds, in slot order.
PURCHASE, REFUND, RETRY, DEFECT = 0, 1, 2, 3


@dataclass(frozen=True)
class DayPlan:
    """How many records of each kind one landing day gets, and where references may point."""

    index: int  # position among the generated days
    landing_date: dt.date
    purchase_orders: int
    refunds: int
    retries: int
    defects: int
    refund_source_days: tuple[int, ...]  # day numbers (days since 1970-01-01)
    retry_source_days: tuple[int, ...]
    files: int

    @property
    def day_number(self) -> int:
        return (self.landing_date - EPOCH).days

    @property
    def slots(self) -> int:
        return self.purchase_orders + self.refunds + self.retries + self.defects

    def defect_counts(self) -> dict[str, int]:
        """Broken records per kind: they are dealt round-robin over DEFECT_KINDS."""
        return {
            kind: len(range(i, self.defects, len(DEFECT_KINDS)))
            for i, kind in enumerate(DEFECT_KINDS)
        }


@dataclass(frozen=True)
class FileGroup:
    """One non-empty output file: its day, its number in the day, its slots [first, end)."""

    plan: DayPlan
    number: int
    first: int
    end: int


def missing_days(
    history_start: dt.date, end: dt.date, rates: Rates, skip_dates: Sequence[dt.date] | None
) -> frozenset[dt.date]:
    """Landing dates between history_start and end that get no folder at all.

    ``skip_dates`` names them; when it is None and the defect rate is positive, the 9th
    day of the history and every 30th day after it are missing.
    """
    if skip_dates is not None:
        return frozenset(skip_dates)
    if rates.defect_rate <= 0:
        return frozenset()
    return frozenset(
        history_start + dt.timedelta(days=offset)
        for offset in range((end - history_start).days + 1)
        if offset % MISSING_DAY_PERIOD == MISSING_DAY_INDEX
    )


def plan_days(
    days: DateRange,
    history_start: dt.date,
    events_per_day: int,
    rates: Rates,
    files_per_day: int,
    skipped: frozenset[dt.date],
) -> list[DayPlan]:
    """The plan of every landed day of ``days`` (the skipped ones get none)."""

    def landed_days(first: dt.date, last: dt.date) -> tuple[int, ...]:
        first = max(first, history_start)
        return tuple(
            (first - EPOCH).days + offset
            for offset in range((last - first).days + 1)
            if first + dt.timedelta(days=offset) not in skipped
        )

    purchase_orders = max(
        1, round(events_per_day * (1 - rates.refund_rate) / mean_items_per_order())
    )
    defects = (
        max(len(DEFECT_KINDS), round(events_per_day * rates.defect_rate))
        if rates.defect_rate > 0
        else 0
    )
    plans: list[DayPlan] = []
    for day in days.days():
        if day in skipped:
            continue
        refund_sources = landed_days(
            day - dt.timedelta(days=REFUND_LOOKBACK_DAYS), day - dt.timedelta(days=1)
        )
        plans.append(
            DayPlan(
                index=len(plans),
                landing_date=day,
                purchase_orders=purchase_orders,
                refunds=round(events_per_day * rates.refund_rate) if refund_sources else 0,
                retries=round(events_per_day * rates.retry_rate),
                defects=defects,
                refund_source_days=refund_sources,
                retry_source_days=landed_days(day - dt.timedelta(days=RETRY_LOOKBACK_DAYS), day),
                files=files_per_day,
            )
        )
    return plans


def file_groups(plans: Sequence[DayPlan]) -> list[FileGroup]:
    """Every non-empty output file, in the order Spark writes them (partition i is group i)."""
    groups = []
    for plan in plans:
        for number in range(plan.files):
            first = number * plan.slots // plan.files
            end = (number + 1) * plan.slots // plan.files
            if end > first:
                groups.append(FileGroup(plan, number, first, end))
    return groups


def slot_permutation(plan: DayPlan, seed: int) -> tuple[int, int]:
    """(stride, shift) of a bijection slot -> (stride * slot + shift) mod slots.

    It interleaves purchases, refunds, retries and defects within the day's files.
    """
    slots = plan.slots
    stride = max(1, int(slots * 0.6180339887))
    while math.gcd(stride, slots) != 1:
        stride += 1
    shift = (seed * 2_654_435_761 + plan.day_number) % slots
    return stride, shift
