"""What a generation run wrote: per landing day, per kind of record and of defect."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from devtools.sample_data.columns import Hasher, lookup
from devtools.sample_data.defects import DEFECT_KINDS
from devtools.sample_data.plan import PURCHASE, DayPlan
from devtools.sample_data.scenario import MAX_ITEMS_PER_ORDER, Rates
from spark_jobs.catalog import landing_path


@dataclass(frozen=True)
class DaySummary:
    """What one landing day received."""

    landing_date: dt.date
    files: int = 0  # including the empty file
    purchases: int = 0  # purchase line items (first deliveries)
    refunds: int = 0
    retries: int = 0  # repeated deliveries of a purchase line
    late: int = 0  # purchase line items whose event date is 1..10 days before landing
    defects: dict[str, int] = field(default_factory=dict)  # record-level, by kind
    empty_file: bool = False
    missing: bool = False  # no folder at all

    @property
    def lines(self) -> int:
        """Lines landed this day, broken ones included."""
        return self.purchases + self.refunds + self.retries + sum(self.defects.values())


@dataclass(frozen=True)
class GenerationSummary:
    """What a generation run wrote, per landing day and per defect kind."""

    root: str
    seed: int
    users: int
    days: tuple[DaySummary, ...]
    seconds: float

    @property
    def events_written(self) -> int:
        """Every line landed, broken ones and repeated deliveries included."""
        return sum(day.lines for day in self.days)

    @property
    def files(self) -> int:
        """Files written, the empty ones included."""
        return sum(day.files for day in self.days)

    @property
    def defects(self) -> dict[str, int]:
        """Count per defect kind, record-level and day-level, zeros included."""
        counts = {kind: sum(day.defects.get(kind, 0) for day in self.days) for kind in DEFECT_KINDS}
        counts["empty_file"] = sum(day.empty_file for day in self.days)
        counts["missing_day"] = sum(day.missing for day in self.days)
        return counts

    @property
    def rows_per_second(self) -> float:
        """Lines written per second of wall time, Spark start-up excluded."""
        return self.events_written / self.seconds if self.seconds > 0 else 0.0

    def day(self, landing_date: dt.date) -> DaySummary:
        """The summary of one landing date; KeyError when it is outside the run."""
        for day in self.days:
            if day.landing_date == landing_date:
                return day
        raise KeyError(landing_date)

    def describe(self) -> str:
        """A few lines for people: days, files, events, defects, speed."""
        injected = {kind: n for kind, n in self.defects.items() if n}
        missing = [str(d.landing_date) for d in self.days if d.missing]
        return "\n".join(
            [
                f"landing data under {landing_path(self.root)} (seed {self.seed}, "
                f"{self.users} users)",
                f"days: {len(self.days)} ({len(missing)} without files: "
                f"{', '.join(missing) or 'none'}), files: {self.files}",
                f"events written: {self.events_written} (purchases "
                f"{sum(d.purchases for d in self.days)}, refunds "
                f"{sum(d.refunds for d in self.days)}, retried deliveries "
                f"{sum(d.retries for d in self.days)}, late "
                f"{sum(d.late for d in self.days)})",
                f"defects injected: {sum(injected.values())} "
                + (
                    "(" + ", ".join(f"{k} {n}" for k, n in injected.items()) + ")"
                    if injected
                    else "(none)"
                ),
                f"{self.seconds:.1f} s, {self.rows_per_second:,.0f} rows/s",
            ]
        )


def purchase_counts(
    spark: SparkSession, plans: Sequence[DayPlan], seed: int, rates: Rates
) -> dict[int, tuple[int, int]]:
    """Per day index: (purchase line items, late ones), from the same hashes the lines use."""
    h = Hasher(seed)
    orders = plans[0].purchase_orders
    order_rows = spark.range(0, len(plans) * orders)
    day_index = F.floor(F.col("id") / orders)
    day = lookup([p.day_number for p in plans], day_index).cast("long")
    order = F.col("id") - day_index * orders
    key = (day, F.lit(PURCHASE), order)
    items = 1 + F.floor(F.pow(h.uniform("items", *key), 2) * MAX_ITEMS_PER_ORDER)
    late = h.uniform("late", *key) < rates.late_rate
    rows = (
        order_rows.select(day_index.alias("day_index"), items.alias("items"), late.alias("late"))
        .groupBy("day_index")
        .agg(
            F.sum("items").alias("items"),
            F.sum(F.when(F.col("late"), F.col("items")).otherwise(0)).alias("late_items"),
        )
        .collect()
    )
    return {int(r["day_index"]): (int(r["items"]), int(r["late_items"])) for r in rows}


def day_summary(plan: DayPlan, files: int, empty_file: bool, counts: tuple[int, int]) -> DaySummary:
    """A landed day's summary: ``files`` data files moved, ``counts`` from purchase_counts."""
    items, late = counts
    return DaySummary(
        landing_date=plan.landing_date,
        files=files + empty_file,
        purchases=items,
        refunds=plan.refunds,
        retries=plan.retries,
        late=late,
        defects=plan.defect_counts(),
        empty_file=empty_file,
    )
