"""Sample landing data: days of purchase events as the order system would land them.

Writes ``<root>/landing/purchases/dt=YYYY-MM-DD/part-NNNNN.jsonl[.gz]`` following the
landing contract of DESIGN.md, with the mess of a real feed: heavy buyers and rare ones,
multi-item orders, refunds of earlier orders, retried deliveries, late events and a share
of broken records. docs/GENERATOR.md describes the options and every defect.

Every value is a hash of (seed, landing day, record number), never ``rand()``, so the same
arguments give byte-identical files whatever the cluster, and a day's content does not
depend on how many other days are generated with it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import (
    LANDING_FIELDS,
    join_path,
    landing_day_path,
    landing_path,
    reference_path,
)
from spark_jobs.cli import (
    DateRange,
    UserError,
    date_range,
    job_parser,
    parse_date,
    resolve_root,
    run_cli,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Region:
    """Where a group of customers lives: its UTC offset and the currencies it pays in."""

    name: str
    utc_offset_minutes: int
    currencies: tuple[str, ...]  # the first is the home currency
    percent_of_customers: int


# Fixed offsets (no daylight saving) keep the data reproducible; negative, half- and
# quarter-hour offsets make local dates differ from UTC dates around midnight.
REGIONS = (
    Region("us_pacific", -480, ("USD",), 14),
    Region("us_eastern", -300, ("USD", "CAD"), 16),
    Region("hawaii", -600, ("USD",), 2),
    Region("newfoundland", -210, ("CAD", "USD"), 2),
    Region("canada_eastern", -300, ("CAD", "USD"), 5),
    Region("brazil", -180, ("BRL", "USD"), 6),
    Region("united_kingdom", 0, ("GBP", "EUR"), 9),
    Region("central_europe", 60, ("EUR", "CHF", "USD"), 14),
    Region("sweden", 60, ("SEK", "EUR"), 4),
    Region("india", 330, ("INR", "USD"), 12),
    Region("nepal", 345, ("INR", "USD"), 1),
    Region("japan", 540, ("JPY", "USD"), 8),
    Region("south_australia", 570, ("AUD",), 2),
    Region("australia_east", 600, ("AUD", "USD"), 5),
)
HOME_CURRENCY_SHARE = 0.85

# Units of each currency per US dollar, only to make shelf prices look local; the
# reporting conversion uses the reference rates, not these.
PRICE_LEVEL = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 150.0,
    "CAD": 1.36,
    "AUD": 1.52,
    "BRL": 5.0,
    "INR": 83.0,
    "CHF": 0.88,
    "SEK": 10.5,
}

# (category, cheapest, dearest shelf price in USD); prices are log-uniform in between.
CATEGORIES = (
    ("electronics", 15, 1500),
    ("books", 5, 60),
    ("home", 8, 400),
    ("garden", 5, 300),
    ("toys", 5, 120),
    ("apparel", 8, 250),
    ("beauty", 4, 90),
    ("sports", 10, 600),
    ("grocery", 1, 40),
    ("music", 1, 30),
    ("office", 2, 150),
    ("pet_supplies", 3, 120),
)
SKU_COUNT = 5000
MAX_ITEMS_PER_ORDER = 5
MAX_QUANTITY = 6
MAX_LATE_DAYS = 10
REFUND_LOOKBACK_DAYS = 30
RETRY_LOOKBACK_DAYS = 2
NULL_CATEGORY_SHARE = 0.02
FREE_ITEM_SHARE = 0.002
# The share of users holding a purchase is u**USER_SKEW for u uniform: the top 1% of
# users place about 0.01 ** (1 / USER_SKEW) = 21% of the orders.
USER_SKEW = 3.0
# The missing landing day, when none is named: this day of the history and every
# MISSING_DAY_PERIOD days after it.
MISSING_DAY_INDEX = 8
MISSING_DAY_PERIOD = 30

# Record-level defects, injected round-robin so that every kind appears every day.
DEFECT_KINDS = (
    "malformed_json",
    "missing_field",
    "null_field",
    "invalid_event_type",
    "non_positive_quantity",
    "non_integer_quantity",
    "bad_price",
    "unknown_currency",
    "unparsable_event_time",
    "future_event_time",
)
# Day-level defects: a day with a zero-byte file, a day with no folder at all.
DAY_DEFECTS = ("empty_file", "missing_day")
# The quarantine reason silver is expected to give each record-level defect.
EXPECTED_REASON = {
    "malformed_json": "MALFORMED_JSON",
    "missing_field": "MISSING_FIELD",
    "null_field": "MISSING_FIELD",
    "invalid_event_type": "INVALID_EVENT_TYPE",
    "non_positive_quantity": "INVALID_QUANTITY",
    "non_integer_quantity": "INVALID_QUANTITY",
    "bad_price": "INVALID_PRICE",
    "unknown_currency": "UNKNOWN_CURRENCY",
    "unparsable_event_time": "INVALID_EVENT_TIME",
    "future_event_time": "FUTURE_EVENT_TIME",
}
REQUIRED_FIELDS = tuple(name for name in LANDING_FIELDS if name != "category")

_HASH_RANGE = 1 << 31
_EPOCH = dt.date(1970, 1, 1)
_SECONDS_PER_DAY = 86_400
_PURCHASE, _REFUND, _RETRY, _DEFECT = 0, 1, 2, 3


@dataclass(frozen=True)
class Rates:
    """How messy the feed is; every rate is a share of a day's events, in [0, 1)."""

    defect_rate: float = 0.01  # broken records; > 0 also adds an empty file and a missing day
    late_rate: float = 0.03  # purchase orders landing 1..10 days after they happened
    retry_rate: float = 0.01  # deliveries repeated the same day or up to 2 days later
    refund_rate: float = 0.04  # refunds of a purchase landed up to 30 days earlier


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
        defects = self.defects
        injected = {kind: n for kind, n in defects.items() if n}
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


@dataclass(frozen=True)
class _DayPlan:
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
        return (self.landing_date - _EPOCH).days

    @property
    def slots(self) -> int:
        return self.purchase_orders + self.refunds + self.retries + self.defects


def mean_items_per_order() -> float:
    """Expected line items of a purchase order: 1 + floor(u**2 * MAX_ITEMS_PER_ORDER)."""
    return 1 + sum(1 - math.sqrt(k / MAX_ITEMS_PER_ORDER) for k in range(1, MAX_ITEMS_PER_ORDER))


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


def _plan(
    days: DateRange,
    history_start: dt.date,
    events_per_day: int,
    rates: Rates,
    files_per_day: int,
    skipped: frozenset[dt.date],
) -> list[_DayPlan]:
    def landed_days(first: dt.date, last: dt.date) -> tuple[int, ...]:
        first = max(first, history_start)
        return tuple(
            (first - _EPOCH).days + offset
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
    plans = []
    for day in days.days():
        if day in skipped:
            continue
        refund_sources = landed_days(
            day - dt.timedelta(days=REFUND_LOOKBACK_DAYS), day - dt.timedelta(days=1)
        )
        plans.append(
            _DayPlan(
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


def _groups(plans: Sequence[_DayPlan]) -> list[tuple[_DayPlan, int, int, int]]:
    """(day, file number, first slot, end slot) of every non-empty output file."""
    groups = []
    for plan in plans:
        for number in range(plan.files):
            first = number * plan.slots // plan.files
            end = (number + 1) * plan.slots // plan.files
            if end > first:
                groups.append((plan, number, first, end))
    return groups


def _slot_permutation(plan: _DayPlan, seed: int) -> tuple[int, int]:
    """(stride, shift) of a bijection slot -> (stride * slot + shift) mod slots.

    It interleaves purchases, refunds, retries and defects within the day's files.
    """
    slots = plan.slots
    stride = max(1, int(slots * 0.6180339887))
    while math.gcd(stride, slots) != 1:
        stride += 1
    shift = (seed * 2_654_435_761 + plan.day_number) % slots
    return stride, shift


class _Hasher:
    """Deterministic pseudo-random values from (seed, salt, key columns)."""

    def __init__(self, seed: int) -> None:
        self.seed = F.lit(seed).cast("long")

    def hash(self, salt: str, *keys: Column) -> Column:
        return F.xxhash64(self.seed, F.lit(salt), *keys)

    def uniform(self, salt: str, *keys: Column) -> Column:
        """A double in [0, 1)."""
        return F.pmod(self.hash(salt, *keys), F.lit(_HASH_RANGE)) / float(_HASH_RANGE)

    def below(self, salt: str, bound: Column | int, *keys: Column) -> Column:
        """A long in [0, bound); bound must be >= 1."""
        bound_col = bound if isinstance(bound, Column) else F.lit(bound)
        return F.pmod(self.hash(salt, *keys), bound_col.cast("long"))


def _lookup(values: Sequence[object], index: Column) -> Column:
    """values[index] for a 0-based index column, from a literal array."""
    return F.get(F.array(*[F.lit(v) for v in values]), index.cast("int"))


def _with(frame: DataFrame, **columns: Column) -> DataFrame:
    """The frame plus named columns.

    Building the record in such steps lets Spark compute each hash once per row instead
    of inlining it into every expression that uses it.
    """
    return frame.select("*", *[column.alias(name) for name, column in columns.items()])


def _day_string(day_number: Column) -> Column:
    """YYYY-MM-DD of a day number, independent of the session time zone."""
    return F.date_add(F.lit(_EPOCH), day_number.cast("int")).cast("string")


def _local_time_text(local_epoch: Column) -> Column:
    """YYYY-MM-DDTHH:MM:SS of seconds since 1970-01-01 on a local clock."""
    second_of_day = F.pmod(local_epoch, F.lit(_SECONDS_PER_DAY))
    return F.concat(
        _day_string(F.floor(local_epoch / _SECONDS_PER_DAY)),
        F.lit("T"),
        F.lpad(F.floor(second_of_day / 3600).cast("string"), 2, "0"),
        F.lit(":"),
        F.lpad(F.floor(F.pmod(second_of_day, F.lit(3600)) / 60).cast("string"), 2, "0"),
        F.lit(":"),
        F.lpad(F.pmod(second_of_day, F.lit(60)).cast("string"), 2, "0"),
    )


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _local_second_of_day(u: Column) -> Column:
    """Shoppers are awake: 80% of events between 08:00 and 24:00 local time."""
    return F.when(u < 0.8, 8 * 3600 + F.floor(u / 0.8 * 16 * 3600)).otherwise(
        F.floor((u - 0.8) / 0.2 * 8 * 3600)
    )


def _quote(value: Column) -> Column:
    return F.concat(F.lit('"'), value, F.lit('"'))


def _minor_units() -> dict[str, int]:
    with open(reference_path("currencies.csv"), newline="") as handle:
        return {row["currency"]: int(row["minor_units"]) for row in csv.DictReader(handle)}


def _price_text(price: Column, minor: Column, minor_units: dict[str, int]) -> Column:
    """Shelf-price strings: 19.99 style with cents, round tens without (e.g. JPY 1980)."""
    texts = F.when(
        minor == 0, F.greatest(F.round(price, -1), F.lit(10.0)).cast("decimal(18,0)").cast("string")
    )
    for units in sorted(set(minor_units.values()) - {0}):
        shelf = (
            F.when(price >= 1, F.floor(price) + 0.99).otherwise(F.round(price, 2))
            if units == 2
            else F.round(price, units)
        )
        texts = texts.when(minor == units, shelf.cast(f"decimal(18,{units})").cast("string"))
    return texts


def _free_price_text(minor: Column, minor_units: dict[str, int]) -> Column:
    """Zero in the currency's format: "0" or "0.00"."""
    texts = F.when(minor == 0, F.lit("0"))
    for units in sorted(set(minor_units.values()) - {0}):
        texts = texts.when(minor == units, F.lit("0." + "0" * units))
    return texts


def purchase_lines(
    spark: SparkSession,
    plans: Sequence[_DayPlan],
    users: int,
    seed: int,
    rates: Rates,
) -> DataFrame:
    """One ``value`` column of JSON lines; Spark partition i holds output file i of _groups.

    Each line is a pure function of the record it renders (its landing day, kind and
    number), so a retried delivery re-renders its original byte for byte.
    """
    groups = _groups(plans)
    h = _Hasher(seed)
    minor_units = _minor_units()
    currencies = sorted(minor_units)
    id_width = max(7, len(str(max(p.slots for p in plans) * MAX_ITEMS_PER_ORDER)))
    user_width = max(6, len(str(users - 1)))
    purchase_orders = plans[0].purchase_orders

    def per_day(values: Sequence[object]) -> Column:
        return _lookup(values, F.col("day_index"))

    def source_days(days: Sequence[Sequence[int]]) -> Column:
        return F.get(
            F.array(*[F.array(*[F.lit(d) for d in ds]).cast("array<int>") for ds in days]),
            F.col("day_index").cast("int"),
        )

    def items_of(*order_key: Column) -> Column:
        return 1 + F.floor(F.pow(h.uniform("items", *order_key), 2) * MAX_ITEMS_PER_ORDER)

    group = F.col("id")
    frame = spark.range(0, len(groups), 1, len(groups)).select(
        _lookup([g[0].index for g in groups], group).alias("day_index"),
        F.explode(
            F.sequence(
                _lookup([g[2] for g in groups], group).cast("long"),
                _lookup([g[3] for g in groups], group).cast("long") - 1,
            )
        ).alias("slot"),
    )
    # Spread purchases, refunds, retries and defects over the day's files.
    permutation = [_slot_permutation(p, seed) for p in plans]
    frame = _with(
        frame,
        day=per_day([p.day_number for p in plans]).cast("long"),
        logical=F.pmod(
            per_day([s for s, _ in permutation]).cast("long") * F.col("slot")
            + per_day([b for _, b in permutation]).cast("long"),
            per_day([p.slots for p in plans]).cast("long"),
        ),
        refunds_start=F.lit(purchase_orders).cast("long"),
    )
    frame = _with(frame, retries_start=F.col("refunds_start") + per_day([p.refunds for p in plans]))
    frame = _with(frame, defects_start=F.col("retries_start") + per_day([p.retries for p in plans]))
    logical = F.col("logical")
    frame = _with(
        frame,
        kind=F.when(logical < F.col("refunds_start"), _PURCHASE)
        .when(logical < F.col("retries_start"), _REFUND)
        .when(logical < F.col("defects_start"), _RETRY)
        .otherwise(_DEFECT),
        number=logical
        - F.when(logical < F.col("refunds_start"), 0)
        .when(logical < F.col("retries_start"), F.col("refunds_start"))
        .when(logical < F.col("defects_start"), F.col("retries_start"))
        .otherwise(F.col("defects_start")),
    )
    kind, day, number = F.col("kind"), F.col("day"), F.col("number")
    frame = _with(
        frame,
        item=F.explode(
            F.when(
                kind == _PURCHASE,
                F.sequence(F.lit(0).cast("long"), items_of(day, F.lit(_PURCHASE), number) - 1),
            ).otherwise(F.array(F.lit(0).cast("long")))
        ),
    )
    # The purchase line a record renders: itself, the one a refund refunds, the one a
    # retry repeats, or (for a defect) a purchase of its own that then gets broken.
    own = kind.isin(_PURCHASE, _DEFECT)
    refund_days = source_days([p.refund_source_days for p in plans])
    retry_days = source_days([p.retry_source_days for p in plans])
    frame = _with(
        frame,
        src_day=F.when(own, day)
        .when(
            kind == _REFUND,
            F.get(
                refund_days,
                h.below("refund_day", F.greatest(F.size(refund_days), F.lit(1)), day, number).cast(
                    "int"
                ),
            ),
        )
        .otherwise(
            F.get(
                retry_days,
                h.below("retry_day", F.greatest(F.size(retry_days), F.lit(1)), day, number).cast(
                    "int"
                ),
            )
        )
        .cast("long"),
        src_order=F.when(own, number)
        .when(kind == _REFUND, h.below("refund_order", purchase_orders, day, number))
        .otherwise(h.below("retry_order", purchase_orders, day, number)),
        src_kind=F.when(kind == _DEFECT, F.lit(_DEFECT)).otherwise(F.lit(_PURCHASE)),
    )
    order_key = (F.col("src_day"), F.col("src_kind"), F.col("src_order"))
    frame = _with(frame, src_items=items_of(*order_key))
    frame = _with(
        frame,
        src_item=F.when(own, F.col("item"))
        .when(kind == _REFUND, h.below("refund_item", F.col("src_items"), day, number))
        .otherwise(h.below("retry_item", F.col("src_items"), day, number)),
    )
    item_key = (*order_key, F.col("src_item"))

    # Who bought, where they live, what they paid in, when.
    frame = _with(
        frame,
        user=F.least(
            F.floor(F.pow(h.uniform("user", *order_key), USER_SKEW) * users), F.lit(users - 1)
        ),
        late=(F.col("src_kind") == _PURCHASE) & (h.uniform("late", *order_key) < rates.late_rate),
        late_days=1 + F.floor(F.pow(h.uniform("late_days", *order_key), 2) * MAX_LATE_DAYS),
        time_u=F.when(kind == _REFUND, h.uniform("refund_time", day, number)).otherwise(
            h.uniform("time", *order_key)
        ),
        home_currency=h.uniform("home_currency", *order_key) < HOME_CURRENCY_SHARE,
        currency_pick=h.hash("currency", *order_key),
    )
    percentiles = [i for i, r in enumerate(REGIONS) for _ in range(r.percent_of_customers)]
    frame = _with(
        frame, region=_lookup(percentiles, h.below("region", len(percentiles), F.col("user")))
    )
    region = F.col("region")
    region_currencies = F.get(
        F.array(*[F.array(*[F.lit(c) for c in r.currencies]) for r in REGIONS]), region.cast("int")
    )
    frame = _with(
        frame,
        offset_minutes=_lookup([r.utc_offset_minutes for r in REGIONS], region).cast("long"),
        offset_text=_lookup([_offset_text(r.utc_offset_minutes) for r in REGIONS], region),
        currency=F.get(
            region_currencies,
            F.when(F.col("home_currency"), 0)
            .otherwise(F.pmod(F.col("currency_pick"), F.size(region_currencies).cast("long")))
            .cast("int"),
        ),
    )
    # What they bought: popular SKUs sell more; each SKU has one category and base price.
    frame = _with(
        frame,
        sku=F.floor(F.pow(h.uniform("sku", *item_key), 2) * SKU_COUNT),
        quantity=1 + F.floor(F.pow(h.uniform("quantity", *item_key), 8) * MAX_QUANTITY),
        free=h.uniform("free", *item_key) < FREE_ITEM_SHARE,
        no_category=h.uniform("no_category", *item_key) < NULL_CATEGORY_SHARE,
        currency_index=F.array_position(F.array(*[F.lit(c) for c in currencies]), F.col("currency"))
        - 1,
    )
    frame = _with(
        frame,
        category_index=h.below("category", len(CATEGORIES), F.col("sku")),
        price_u=h.uniform("price", F.col("sku")),
        minor=_lookup([minor_units[c] for c in currencies], F.col("currency_index")),
        price_level=_lookup([PRICE_LEVEL.get(c, 1.0) for c in currencies], F.col("currency_index")),
    )
    category_index = F.col("category_index")
    low = _lookup([math.log10(c[1]) for c in CATEGORIES], category_index)
    high = _lookup([math.log10(c[2]) for c in CATEGORIES], category_index)
    frame = _with(
        frame,
        category=F.when(~F.col("no_category"), _lookup([c[0] for c in CATEGORIES], category_index)),
        local_price=F.pow(F.lit(10.0), low + F.col("price_u") * (high - low))
        * F.col("price_level"),
    )
    # A purchase happens on its landing day, or 1..10 days earlier when late; a refund on
    # its own landing day, after the purchase it refunds (that landed on an earlier day).
    event_day = F.when(kind == _REFUND, day).otherwise(
        F.col("src_day") - F.when(F.col("late"), F.col("late_days")).otherwise(0)
    )
    utc_second = F.pmod(
        _local_second_of_day(F.col("time_u")) - F.col("offset_minutes") * 60,
        F.lit(_SECONDS_PER_DAY),
    )
    frame = _with(
        frame,
        local_epoch=event_day * _SECONDS_PER_DAY + utc_second + F.col("offset_minutes") * 60,
        unit_price=F.when(F.col("free"), _free_price_text(F.col("minor"), minor_units)).otherwise(
            _price_text(F.col("local_price"), F.col("minor"), minor_units)
        ),
        order_id=F.concat(
            F.lit("ord-"),
            F.translate(_day_string(F.col("src_day")), "-", ""),
            F.when(F.col("src_kind") == _DEFECT, F.lit("-x")).otherwise(F.lit("-p")),
            F.lpad(F.col("src_order").cast("string"), id_width, "0"),
        ),
        defect=F.when(kind == _DEFECT, F.pmod(number, F.lit(len(DEFECT_KINDS)))).otherwise(-1),
    )
    # A refund is an event of its own landing day; a line item is its order's n-th line.
    event_id = F.when(
        kind == _REFUND,
        F.concat(
            F.lit("evt-"),
            F.translate(_day_string(day), "-", ""),
            F.lit("-r"),
            F.lpad(number.cast("string"), id_width, "0"),
        ),
    ).otherwise(
        F.concat(
            F.lit("evt-"),
            F.substring(F.col("order_id"), 5, 64),
            F.lit("-"),
            (F.col("src_item") + 1).cast("string"),
        )
    )
    frame = _with(
        frame,
        event_id=_quote(event_id),
        event_time=_quote(F.concat(_local_time_text(F.col("local_epoch")), F.col("offset_text"))),
    )
    values = {
        "event_id": F.col("event_id"),
        "order_id": _quote(F.col("order_id")),
        "user_id": _quote(
            F.concat(F.lit("u"), F.lpad(F.col("user").cast("string"), user_width, "0"))
        ),
        "event_type": _quote(F.when(kind == _REFUND, F.lit("refund")).otherwise(F.lit("purchase"))),
        "event_time": F.col("event_time"),
        "sku": _quote(F.concat(F.lit("SKU-"), F.lpad(F.col("sku").cast("string"), 5, "0"))),
        "category": F.coalesce(_quote(F.col("category")), F.lit("null")),
        "quantity": F.when(
            kind == _REFUND, 1 + h.below("refund_quantity", F.col("quantity"), day, number)
        )
        .otherwise(F.col("quantity"))
        .cast("string"),
        "unit_price": _quote(F.col("unit_price")),
        "currency": _quote(F.col("currency")),
    }
    frame = _with(frame, line=_json_line(values))
    # A defect's impossible event time: 1 hour to 3 days after its landing day ends.
    future_local_epoch = (
        (day + 1) * _SECONDS_PER_DAY
        + 3600
        + h.below("defect_future", 3 * _SECONDS_PER_DAY - 3600, day, number)
        + F.col("offset_minutes") * 60
    )
    details = _DefectDetails(
        variant=h.below("defect_variant", 12, day, number),
        field_index=h.below("defect_field", len(REQUIRED_FIELDS), day, number),
        future_time=_quote(F.concat(_local_time_text(future_local_epoch), F.col("offset_text"))),
    )
    # A strict prefix of a JSON object never closes it, so it never parses.
    cut = F.floor(F.length(F.col("line")) * (0.2 + 0.7 * h.uniform("defect_cut", day, number)))
    defect = F.col("defect")
    # Sound records (nearly all) take the first branch and skip every defect expression.
    return frame.select(
        F.when(defect < 0, F.col("line"))
        .when(
            defect == DEFECT_KINDS.index("malformed_json"),
            F.col("line").substr(F.lit(1), cut.cast("int")),
        )
        .otherwise(_json_line(_broken(values, defect, details)))
        .alias("value")
    )


@dataclass(frozen=True)
class _DefectDetails:
    """How a broken record is broken, beyond its kind."""

    variant: Column  # which of a kind's example values
    field_index: Column  # which required field goes missing or null
    future_time: Column  # quoted event time after the end of the landing day


def _broken(
    values: dict[str, Column], defect: Column, details: _DefectDetails
) -> dict[str, Column | None]:
    """The JSON value text of each field after the record's defect (None: field absent)."""
    variant = details.variant

    def pick(*options: str) -> Column:
        return _lookup(options, F.pmod(variant, F.lit(len(options))))

    def is_kind(name: str) -> Column:
        return defect == DEFECT_KINDS.index(name)

    sound_time = values["event_time"]
    broken = dict(values)
    broken["event_type"] = F.when(
        is_kind("invalid_event_type"), pick('"Purchase"', '"return"', '"chargeback"', '""')
    ).otherwise(values["event_type"])
    broken["quantity"] = (
        F.when(is_kind("non_positive_quantity"), pick("0", "-1", "-2"))
        .when(is_kind("non_integer_quantity"), pick("2.5", '"two"', "1.5"))
        .otherwise(values["quantity"])
    )
    broken["unit_price"] = F.when(
        is_kind("bad_price"), pick('"12,50"', '"abc"', '"-3.00"')
    ).otherwise(values["unit_price"])
    broken["currency"] = F.when(is_kind("unknown_currency"), pick('"XXX"', '"usd"')).otherwise(
        values["currency"]
    )
    broken["event_time"] = (
        F.when(
            is_kind("unparsable_event_time"),
            F.when(F.pmod(variant, F.lit(3)) == 0, F.lit('"not-a-time"'))
            # a clock reading of 25:61 does not exist
            .when(
                F.pmod(variant, F.lit(3)) == 1,
                F.concat(
                    F.substring(sound_time, 1, 12), F.lit("25:61"), F.substring(sound_time, 18, 64)
                ),
            )
            # no offset: the local time cannot be placed on the UTC time line
            .otherwise(F.concat(F.substring(sound_time, 1, 20), F.lit('"'))),
        )
        .when(is_kind("future_event_time"), details.future_time)
        .otherwise(sound_time)
    )
    result: dict[str, Column | None] = {}
    for name in LANDING_FIELDS:
        value = broken[name]
        if name in REQUIRED_FIELDS:
            targeted = details.field_index == REQUIRED_FIELDS.index(name)
            value = F.when(is_kind("null_field") & targeted, F.lit("null")).otherwise(value)
            value = F.when(~(is_kind("missing_field") & targeted), value)
        result[name] = value
    return result


def _json_line(values: dict[str, Column | None]) -> Column:
    """One JSON object of the fields in contract order; a null value leaves its field out."""
    pairs = [F.concat(F.lit(f'"{name}":'), values[name]) for name in LANDING_FIELDS]
    return F.concat(F.lit("{"), F.concat_ws(",", *pairs), F.lit("}"))


def _purchase_counts(
    spark: SparkSession, plans: Sequence[_DayPlan], seed: int, rates: Rates
) -> dict[int, tuple[int, int]]:
    """Per day index: (purchase line items, late ones), from the same hashes the lines use."""
    h = _Hasher(seed)
    orders = plans[0].purchase_orders
    order_rows = spark.range(0, len(plans) * orders)
    day_index = F.floor(F.col("id") / orders)
    day = _lookup([p.day_number for p in plans], day_index).cast("long")
    order = F.col("id") - day_index * orders
    key = (day, F.lit(_PURCHASE), order)
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


class _FileSystem:
    """The Hadoop file system of the landing folder: local folders and s3a:// alike."""

    def __init__(self, spark: SparkSession, some_path: str) -> None:
        self._jvm = spark._jvm  # type: ignore[attr-defined]
        conf = spark._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        fs = self.path(some_path).getFileSystem(conf)
        # The local file system writes .crc side files; readers of the landing folder
        # should see only the data files.
        checksummed = self._jvm.java.lang.Class.forName("org.apache.hadoop.fs.ChecksumFileSystem")
        if checksummed.isInstance(fs):
            fs = fs.getRawFileSystem()
        self.fs = fs

    def path(self, location: str) -> object:
        return self._jvm.org.apache.hadoop.fs.Path(location)

    def names(self, folder: str) -> list[str]:
        if not self.fs.exists(self.path(folder)):
            return []
        return sorted(
            status.getPath().getName() for status in self.fs.listStatus(self.path(folder))
        )

    def delete(self, location: str) -> None:
        self.fs.delete(self.path(location), True)

    def make_folder(self, folder: str) -> None:
        self.fs.mkdirs(self.path(folder))

    def move(self, source: str, target: str) -> None:
        if not self.fs.rename(self.path(source), self.path(target)):
            raise OSError(f"could not move {source} to {target}")

    def write_bytes(self, location: str, content: bytes) -> None:
        stream = self.fs.create(self.path(location), True)
        try:
            if content:
                stream.write(bytearray(content))
        finally:
            stream.close()


# The record expression fuses into one Java method far above HotSpot's 8000-byte limit
# for JIT compilation, and the JVM would interpret it; with this limit Spark compiles the
# steps separately instead, which measured about 1.5x faster here.
_JIT_FRIENDLY_CODEGEN = {"spark.sql.codegen.hugeMethodLimit": "8000"}


@contextmanager
def _session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set SQL settings for a block, then restore what the caller had."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


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
    _validate(days, users, rates, events_per_day, files_per_day, skip_dates, history_start)
    began = time.monotonic()
    skipped = missing_days(history_start, end, rates, skip_dates)
    plans = _plan(days, history_start, events_per_day, rates, files_per_day, skipped)
    fs = _FileSystem(spark, landing_path(root))
    suffix = ".jsonl.gz" if compress else ".jsonl"
    written: dict[tuple[int, int], str] = {}
    scratch = join_path(landing_path(root), f"_generating_{start}_{end}")
    if plans:
        lines = purchase_lines(spark, plans, users, seed, rates)
        with _session_conf(spark, _JIT_FRIENDLY_CODEGEN):
            (
                lines.write.mode("overwrite")
                .option("compression", "gzip" if compress else "none")
                .option("maxRecordsPerFile", 0)
                .text(scratch)
            )
        groups = _groups(plans)
        for name in fs.names(scratch):
            if name.startswith("part-"):
                plan, number, _, _ = groups[int(name[5:10])]
                written[(plan.index, number)] = join_path(scratch, name)
    counts = _purchase_counts(spark, plans, seed, rates) if plans else {}
    summaries = []
    by_date = {plan.landing_date: plan for plan in plans}
    for day in days.days():
        folder = landing_day_path(root, day)
        fs.delete(folder)
        plan = by_date.get(day)
        if plan is None:
            summaries.append(DaySummary(day, missing=True))
            continue
        fs.make_folder(folder)
        files = [
            (number, written[(plan.index, number)])
            for number in range(plan.files)
            if (plan.index, number) in written
        ]
        for number, source in files:
            fs.move(source, join_path(folder, f"part-{number:05d}{suffix}"))
        empty_file = rates.defect_rate > 0
        if empty_file:
            # Zero lines; gzipped, still a valid (empty) gzip stream.
            empty = gzip.compress(b"", mtime=0) if compress else b""
            fs.write_bytes(join_path(folder, f"part-{plan.files:05d}{suffix}"), empty)
        items, late = counts.get(plan.index, (0, 0))
        summaries.append(
            DaySummary(
                landing_date=day,
                files=len(files) + empty_file,
                purchases=items,
                refunds=plan.refunds,
                retries=plan.retries,
                late=late,
                defects={
                    kind: len(range(i, plan.defects, len(DEFECT_KINDS)))
                    for i, kind in enumerate(DEFECT_KINDS)
                },
                empty_file=empty_file,
            )
        )
    fs.delete(scratch)
    return GenerationSummary(root, seed, users, tuple(summaries), time.monotonic() - began)


def _validate(
    days: DateRange,
    users: int,
    rates: Rates,
    events_per_day: int,
    files_per_day: int,
    skip_dates: Sequence[dt.date] | None,
    history_start: dt.date,
) -> None:
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


def _skip_dates(value: str) -> tuple[dt.date, ...] | None:
    """``auto`` (None), ``none`` (no missing day) or comma-separated dates, for argparse."""
    if value == "auto":
        return None
    if value == "none":
        return ()
    return tuple(parse_date(part.strip()) for part in value.split(",") if part.strip())


def _rate(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r}: expected e.g. 0.01") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, generate the landing files, print a summary; 0 on success."""
    parser = job_parser(
        "generate_purchases",
        "Write sample purchase events to <root>/landing/purchases/dt=YYYY-MM-DD/, "
        "with late, refunded, retried and broken records (see docs/GENERATOR.md).",
    )
    parser.add_argument("--users", type=int, default=1000, help="customers (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same files (default 1)")
    parser.add_argument(
        "--events-per-day",
        type=int,
        default=None,
        help="purchase and refund events per landing day, before retries and defects "
        "(default: --users)",
    )
    parser.add_argument("--files-per-day", type=int, default=2, help="data files per day (2)")
    defaults = Rates()
    for name, help_text in (
        ("defect_rate", "share of broken records (default 0.01; 0 turns all defects off)"),
        ("late_rate", "share of purchase orders landing 1..10 days late (default 0.03)"),
        ("retry_rate", "share of repeated deliveries (default 0.01)"),
        ("refund_rate", "share of refunds of earlier purchases (default 0.04)"),
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_rate,
            default=getattr(defaults, name),
            help=help_text,
        )
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    parser.add_argument(
        "--skip-dates",
        type=_skip_dates,
        default=None,
        help="dates that get no folder: comma-separated YYYY-MM-DD, 'none', or 'auto' "
        "(default: with defects, the 9th day from --history-start and every 30th after)",
    )
    parser.add_argument(
        "--history-start",
        type=parse_date,
        default=None,
        help="first date ever generated with this seed; refunds and retries may point back "
        "to it (default: --start)",
    )
    args = parser.parse_args(argv)
    days = date_range(args)
    rates = Rates(args.defect_rate, args.late_rate, args.retry_rate, args.refund_rate)
    events_per_day = args.users if args.events_per_day is None else args.events_per_day
    history_start = args.history_start or days.start
    _validate(
        days, args.users, rates, events_per_day, args.files_per_day, args.skip_dates, history_start
    )
    root = resolve_root(args.root)
    from spark_jobs.session import build_spark

    spark = SparkSession.getActiveSession() or build_spark(app_name="generate_purchases")
    summary = generate(
        spark,
        root,
        days.start,
        days.end,
        args.users,
        args.seed,
        defect_rate=rates.defect_rate,
        late_rate=rates.late_rate,
        retry_rate=rates.retry_rate,
        refund_rate=rates.refund_rate,
        events_per_day=events_per_day,
        files_per_day=args.files_per_day,
        compress=args.gzip,
        skip_dates=args.skip_dates,
        history_start=history_start,
    )
    print(summary.describe())
    return 0


if __name__ == "__main__":
    run_cli(main)
