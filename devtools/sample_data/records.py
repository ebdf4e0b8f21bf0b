"""The record each slot of a landing day renders: who bought what, when, at which price.

``purchase_lines`` builds one Spark frame, one row per landed line, in steps: the slots
of each output file, the kind and number of each record, the purchase line it renders
(its own, the one a refund refunds or a retry repeats), the customer, the product, the
times and ids, and finally the JSON text with the record's defect, if any.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from devtools.sample_data.columns import (
    SECONDS_PER_DAY,
    Hasher,
    day_string,
    json_line,
    local_time_text,
    lookup,
    offset_text,
    quote,
    with_columns,
)
from devtools.sample_data.defects import DEFECT_KINDS, with_defects
from devtools.sample_data.plan import (
    DEFECT,
    PURCHASE,
    REFUND,
    RETRY,
    DayPlan,
    file_groups,
    slot_permutation,
)
from devtools.sample_data.scenario import (
    CATEGORIES,
    FREE_ITEM_SHARE,
    HOME_CURRENCY_SHARE,
    MAX_ITEMS_PER_ORDER,
    MAX_LATE_DAYS,
    MAX_LINE_QUANTITY,
    NULL_CATEGORY_SHARE,
    PRICE_LEVEL,
    REGIONS,
    SKU_COUNT,
    USER_SKEW,
    Rates,
    minor_units,
)
from spark_jobs.transforms.silver import EVENT_TYPES

# The two event types a sound record carries: silver.EVENT_TYPES, ("purchase", "refund").
PURCHASE_EVENT, REFUND_EVENT = EVENT_TYPES


@dataclass(frozen=True)
class _Feed:
    """What every step of purchase_lines needs: the day plans, the hasher, the formats."""

    plans: Sequence[DayPlan]
    users: int
    rates: Rates
    h: Hasher
    minor_units: dict[str, int]

    @property
    def purchase_orders(self) -> int:
        return self.plans[0].purchase_orders

    @property
    def id_width(self) -> int:
        return max(7, len(str(max(p.slots for p in self.plans) * MAX_ITEMS_PER_ORDER)))

    @property
    def user_width(self) -> int:
        return max(6, len(str(self.users - 1)))

    def per_day(self, values: Sequence[object]) -> Column:
        """values[day_index]: a fact of the row's landing day."""
        return lookup(values, F.col("day_index"))

    def source_days(self, days: Sequence[Sequence[int]]) -> Column:
        """days[day_index]: the day numbers a record of the row's landing day may point at."""
        return F.get(
            F.array(*[F.array(*[F.lit(d) for d in ds]).cast("array<int>") for ds in days]),
            F.col("day_index").cast("int"),
        )

    def items_of(self, *order_key: Column) -> Column:
        """Line items of a purchase order: 1 + floor(u**2 * MAX_ITEMS_PER_ORDER)."""
        return 1 + F.floor(F.pow(self.h.uniform("items", *order_key), 2) * MAX_ITEMS_PER_ORDER)


def purchase_lines(
    spark: SparkSession,
    plans: Sequence[DayPlan],
    users: int,
    seed: int,
    rates: Rates,
) -> DataFrame:
    """One ``value`` column of JSON lines; Spark partition i holds output file i of file_groups.

    Each line is a pure function of the record it renders (its landing day, kind and
    number), so a retried delivery re-renders its original byte for byte.
    """
    feed = _Feed(plans, users, rates, Hasher(seed), minor_units())
    frame = _slots(spark, plans)
    frame = _record_kinds(frame, feed, seed)
    frame = _source_lines(frame, feed)
    frame = _customers(frame, feed)
    frame = _products(frame, feed)
    frame = _times_and_ids(frame, feed)
    values = _field_values(feed)
    frame = with_columns(frame, line=json_line(values))
    return frame.select(with_defects(values, feed.h).alias("value"))


def _slots(spark: SparkSession, plans: Sequence[DayPlan]) -> DataFrame:
    """(day_index, slot) of every record, one Spark partition per output file."""
    groups = file_groups(plans)
    group = F.col("id")
    return spark.range(0, len(groups), 1, len(groups)).select(
        lookup([g.plan.index for g in groups], group).alias("day_index"),
        F.explode(
            F.sequence(
                lookup([g.first for g in groups], group).cast("long"),
                lookup([g.end for g in groups], group).cast("long") - 1,
            )
        ).alias("slot"),
    )


def _record_kinds(frame: DataFrame, feed: _Feed, seed: int) -> DataFrame:
    """Adds ``day``, ``kind`` and ``number``: the slot's record, e.g. the 7th refund."""
    plans = feed.plans
    # Spread purchases, refunds, retries and defects over the day's files.
    permutation = [slot_permutation(p, seed) for p in plans]
    frame = with_columns(
        frame,
        day=feed.per_day([p.day_number for p in plans]).cast("long"),
        logical=F.pmod(
            feed.per_day([s for s, _ in permutation]).cast("long") * F.col("slot")
            + feed.per_day([b for _, b in permutation]).cast("long"),
            feed.per_day([p.slots for p in plans]).cast("long"),
        ),
        refunds_start=F.lit(feed.purchase_orders).cast("long"),
    )
    frame = with_columns(
        frame, retries_start=F.col("refunds_start") + feed.per_day([p.refunds for p in plans])
    )
    frame = with_columns(
        frame, defects_start=F.col("retries_start") + feed.per_day([p.retries for p in plans])
    )
    logical = F.col("logical")
    return with_columns(
        frame,
        kind=F.when(logical < F.col("refunds_start"), PURCHASE)
        .when(logical < F.col("retries_start"), REFUND)
        .when(logical < F.col("defects_start"), RETRY)
        .otherwise(DEFECT),
        number=logical
        - F.when(logical < F.col("refunds_start"), 0)
        .when(logical < F.col("retries_start"), F.col("refunds_start"))
        .when(logical < F.col("defects_start"), F.col("retries_start"))
        .otherwise(F.col("defects_start")),
    )


def _source_lines(frame: DataFrame, feed: _Feed) -> DataFrame:
    """One row per landed line, with the purchase line it renders (``src_*`` columns).

    A purchase order explodes into its line items. The line is the record itself, the
    one a refund refunds, the one a retry repeats, or (for a defect) a purchase of its own
    that then gets broken.
    """
    h = feed.h
    kind, day, number = F.col("kind"), F.col("day"), F.col("number")
    frame = with_columns(
        frame,
        item=F.explode(
            F.when(
                kind == PURCHASE,
                F.sequence(F.lit(0).cast("long"), feed.items_of(day, F.lit(PURCHASE), number) - 1),
            ).otherwise(F.array(F.lit(0).cast("long")))
        ),
    )
    own = kind.isin(PURCHASE, DEFECT)
    refund_days = feed.source_days([p.refund_source_days for p in feed.plans])
    retry_days = feed.source_days([p.retry_source_days for p in feed.plans])

    def pick_day(salt: str, days: Column) -> Column:
        return F.get(
            days, h.below(salt, F.greatest(F.size(days), F.lit(1)), day, number).cast("int")
        )

    frame = with_columns(
        frame,
        src_day=F.when(own, day)
        .when(kind == REFUND, pick_day("refund_day", refund_days))
        .otherwise(pick_day("retry_day", retry_days))
        .cast("long"),
        src_order=F.when(own, number)
        .when(kind == REFUND, h.below("refund_order", feed.purchase_orders, day, number))
        .otherwise(h.below("retry_order", feed.purchase_orders, day, number)),
        src_kind=F.when(kind == DEFECT, F.lit(DEFECT)).otherwise(F.lit(PURCHASE)),
    )
    frame = with_columns(frame, src_items=feed.items_of(*_order_key()))
    return with_columns(
        frame,
        src_item=F.when(own, F.col("item"))
        .when(kind == REFUND, h.below("refund_item", F.col("src_items"), day, number))
        .otherwise(h.below("retry_item", F.col("src_items"), day, number)),
    )


def _order_key() -> tuple[Column, Column, Column]:
    """What every line of one purchase order shares: its day, kind and order number."""
    return F.col("src_day"), F.col("src_kind"), F.col("src_order")


def _customers(frame: DataFrame, feed: _Feed) -> DataFrame:
    """Who bought, where they live, what they paid in, when (the order's shared facts)."""
    h, order_key = feed.h, _order_key()
    frame = with_columns(
        frame,
        user=F.least(
            F.floor(F.pow(h.uniform("user", *order_key), USER_SKEW) * feed.users),
            F.lit(feed.users - 1),
        ),
        late=(F.col("src_kind") == PURCHASE)
        & (h.uniform("late", *order_key) < feed.rates.late_rate),
        late_days=1 + F.floor(F.pow(h.uniform("late_days", *order_key), 2) * MAX_LATE_DAYS),
        time_u=F.when(
            F.col("kind") == REFUND, h.uniform("refund_time", F.col("day"), F.col("number"))
        ).otherwise(h.uniform("time", *order_key)),
        home_currency=h.uniform("home_currency", *order_key) < HOME_CURRENCY_SHARE,
        currency_pick=h.hash("currency", *order_key),
    )
    percentiles = [i for i, r in enumerate(REGIONS) for _ in range(r.percent_of_customers)]
    frame = with_columns(
        frame, region=lookup(percentiles, h.below("region", len(percentiles), F.col("user")))
    )
    region = F.col("region")
    region_currencies = F.get(
        F.array(*[F.array(*[F.lit(c) for c in r.currencies]) for r in REGIONS]), region.cast("int")
    )
    return with_columns(
        frame,
        offset_minutes=lookup([r.utc_offset_minutes for r in REGIONS], region).cast("long"),
        offset_text=lookup([offset_text(r.utc_offset_minutes) for r in REGIONS], region),
        currency=F.get(
            region_currencies,
            F.when(F.col("home_currency"), 0)
            .otherwise(F.pmod(F.col("currency_pick"), F.size(region_currencies).cast("long")))
            .cast("int"),
        ),
    )


def _products(frame: DataFrame, feed: _Feed) -> DataFrame:
    """What they bought: popular SKUs sell more; each SKU has one category and base price."""
    h = feed.h
    item_key = (*_order_key(), F.col("src_item"))
    currencies = sorted(feed.minor_units)
    frame = with_columns(
        frame,
        sku=F.floor(F.pow(h.uniform("sku", *item_key), 2) * SKU_COUNT),
        quantity=1 + F.floor(F.pow(h.uniform("quantity", *item_key), 8) * MAX_LINE_QUANTITY),
        free=h.uniform("free", *item_key) < FREE_ITEM_SHARE,
        no_category=h.uniform("no_category", *item_key) < NULL_CATEGORY_SHARE,
        currency_index=F.array_position(F.array(*[F.lit(c) for c in currencies]), F.col("currency"))
        - 1,
    )
    frame = with_columns(
        frame,
        category_index=h.below("category", len(CATEGORIES), F.col("sku")),
        price_u=h.uniform("price", F.col("sku")),
        minor=lookup([feed.minor_units[c] for c in currencies], F.col("currency_index")),
        price_level=lookup([PRICE_LEVEL.get(c, 1.0) for c in currencies], F.col("currency_index")),
    )
    category_index = F.col("category_index")
    low = lookup([math.log10(c[1]) for c in CATEGORIES], category_index)
    high = lookup([math.log10(c[2]) for c in CATEGORIES], category_index)
    return with_columns(
        frame,
        category=F.when(~F.col("no_category"), lookup([c[0] for c in CATEGORIES], category_index)),
        local_price=F.pow(F.lit(10.0), low + F.col("price_u") * (high - low))
        * F.col("price_level"),
    )


def _times_and_ids(frame: DataFrame, feed: _Feed) -> DataFrame:
    """The event's local time, shelf price text, order and event ids, and defect kind."""
    kind, day, number = F.col("kind"), F.col("day"), F.col("number")
    # A purchase happens on its landing day, or 1..10 days earlier when late; a refund on
    # its own landing day, after the purchase it refunds (that landed on an earlier day).
    event_day = F.when(kind == REFUND, day).otherwise(
        F.col("src_day") - F.when(F.col("late"), F.col("late_days")).otherwise(0)
    )
    utc_second = F.pmod(
        _local_second_of_day(F.col("time_u")) - F.col("offset_minutes") * 60,
        F.lit(SECONDS_PER_DAY),
    )
    frame = with_columns(
        frame,
        local_epoch=event_day * SECONDS_PER_DAY + utc_second + F.col("offset_minutes") * 60,
        unit_price=F.when(
            F.col("free"), _free_price_text(F.col("minor"), feed.minor_units)
        ).otherwise(_price_text(F.col("local_price"), F.col("minor"), feed.minor_units)),
        order_id=F.concat(
            F.lit("ord-"),
            F.translate(day_string(F.col("src_day")), "-", ""),
            F.when(F.col("src_kind") == DEFECT, F.lit("-x")).otherwise(F.lit("-p")),
            F.lpad(F.col("src_order").cast("string"), feed.id_width, "0"),
        ),
        defect=F.when(kind == DEFECT, F.pmod(number, F.lit(len(DEFECT_KINDS)))).otherwise(-1),
    )
    # A refund is an event of its own landing day; a line item is its order's n-th line.
    event_id = F.when(
        kind == REFUND,
        F.concat(
            F.lit("evt-"),
            F.translate(day_string(day), "-", ""),
            F.lit("-r"),
            F.lpad(number.cast("string"), feed.id_width, "0"),
        ),
    ).otherwise(
        F.concat(
            F.lit("evt-"),
            F.substring(F.col("order_id"), 5, 64),
            F.lit("-"),
            (F.col("src_item") + 1).cast("string"),
        )
    )
    return with_columns(
        frame,
        event_id=quote(event_id),
        event_time=quote(F.concat(local_time_text(F.col("local_epoch")), F.col("offset_text"))),
    )


def _field_values(feed: _Feed) -> dict[str, Column]:
    """The JSON value text of each landing field of a sound record."""
    kind, day, number = F.col("kind"), F.col("day"), F.col("number")
    user = F.concat(F.lit("u"), F.lpad(F.col("user").cast("string"), feed.user_width, "0"))
    event_type = F.when(kind == REFUND, F.lit(REFUND_EVENT)).otherwise(F.lit(PURCHASE_EVENT))
    # A refund returns 1 up to the purchased quantity.
    quantity = F.when(
        kind == REFUND, 1 + feed.h.below("refund_quantity", F.col("quantity"), day, number)
    ).otherwise(F.col("quantity"))
    return {
        "event_id": F.col("event_id"),
        "order_id": quote(F.col("order_id")),
        "user_id": quote(user),
        "event_type": quote(event_type),
        "event_time": F.col("event_time"),
        "sku": quote(F.concat(F.lit("SKU-"), F.lpad(F.col("sku").cast("string"), 5, "0"))),
        "category": F.coalesce(quote(F.col("category")), F.lit("null")),
        "quantity": quantity.cast("string"),
        "unit_price": quote(F.col("unit_price")),
        "currency": quote(F.col("currency")),
    }


def _local_second_of_day(u: Column) -> Column:
    """Shoppers are awake: 80% of events between 08:00 and 24:00 local time."""
    return F.when(u < 0.8, 8 * 3600 + F.floor(u / 0.8 * 16 * 3600)).otherwise(
        F.floor((u - 0.8) / 0.2 * 8 * 3600)
    )


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
