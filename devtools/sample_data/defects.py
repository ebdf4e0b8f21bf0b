"""Broken records: ten record-level defect kinds, two day-level ones, and the reason of each.

Every broken record is a purchase of its own (ids with ``-x``) that then gets exactly one
defect, so nothing else refers to it. The bad values below are written out on purpose:
each is an example of input the silver rules (spark_jobs.transforms.silver) reject.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from devtools.sample_data.columns import (
    SECONDS_PER_DAY,
    Hasher,
    json_line,
    local_time_text,
    lookup,
    quote,
)
from spark_jobs import reasons
from spark_jobs.catalog import LANDING_FIELDS
from spark_jobs.transforms.silver import REQUIRED_FIELDS

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
    "malformed_json": reasons.MALFORMED_JSON,
    "missing_field": reasons.MISSING_FIELD,
    "null_field": reasons.MISSING_FIELD,
    "invalid_event_type": reasons.INVALID_EVENT_TYPE,
    "non_positive_quantity": reasons.INVALID_QUANTITY,
    "non_integer_quantity": reasons.INVALID_QUANTITY,
    "bad_price": reasons.INVALID_PRICE,
    "unknown_currency": reasons.UNKNOWN_CURRENCY,
    "unparsable_event_time": reasons.INVALID_EVENT_TIME,
    "future_event_time": reasons.FUTURE_EVENT_TIME,
}


@dataclass(frozen=True)
class _DefectDetails:
    """How a broken record is broken, beyond its kind."""

    variant: Column  # which of a kind's example values
    field_index: Column  # which required field goes missing or null
    future_time: Column  # quoted event time after the end of the landing day


def with_defects(values: dict[str, Column], h: Hasher) -> Column:
    """The landed line of each record: its sound ``line``, or that line broken by its defect.

    Reads the columns ``line``, ``defect`` (an index of DEFECT_KINDS, -1 for a sound
    record), ``day``, ``number``, ``offset_minutes`` and ``offset_text``.
    """
    day, number = F.col("day"), F.col("number")
    # A defect's impossible event time: 1 hour to 3 days after its landing day ends.
    future_local_epoch = (
        (day + 1) * SECONDS_PER_DAY
        + 3600
        + h.below("defect_future", 3 * SECONDS_PER_DAY - 3600, day, number)
        + F.col("offset_minutes") * 60
    )
    details = _DefectDetails(
        variant=h.below("defect_variant", 12, day, number),
        field_index=h.below("defect_field", len(REQUIRED_FIELDS), day, number),
        future_time=quote(F.concat(local_time_text(future_local_epoch), F.col("offset_text"))),
    )
    # A strict prefix of a JSON object never closes it, so it never parses.
    cut = F.floor(F.length(F.col("line")) * (0.2 + 0.7 * h.uniform("defect_cut", day, number)))
    defect = F.col("defect")
    # Sound records (nearly all) take the first branch and skip every defect expression.
    return (
        F.when(defect < 0, F.col("line"))
        .when(
            defect == DEFECT_KINDS.index("malformed_json"),
            F.col("line").substr(F.lit(1), cut.cast("int")),
        )
        .otherwise(json_line(_broken(values, defect, details)))
    )


def _broken(
    values: dict[str, Column], defect: Column, details: _DefectDetails
) -> dict[str, Column]:
    """The JSON value text of each field after the record's defect (null: field left out)."""

    def pick(*options: str) -> Column:
        return lookup(options, F.pmod(details.variant, F.lit(len(options))))

    def is_kind(name: str) -> Column:
        return defect == DEFECT_KINDS.index(name)

    broken = dict(values)
    # Not one of silver.EVENT_TYPES: wrong case, unknown types, blank.
    broken["event_type"] = F.when(
        is_kind("invalid_event_type"), pick('"Purchase"', '"return"', '"chargeback"', '""')
    ).otherwise(values["event_type"])
    # Not a positive whole number (silver.QUANTITY_PATTERN and > 0).
    broken["quantity"] = (
        F.when(is_kind("non_positive_quantity"), pick("0", "-1", "-2"))
        .when(is_kind("non_integer_quantity"), pick("2.5", '"two"', "1.5"))
        .otherwise(values["quantity"])
    )
    # Not a plain non-negative decimal (silver.PRICE_PATTERN).
    broken["unit_price"] = F.when(
        is_kind("bad_price"), pick('"12,50"', '"abc"', '"-3.00"')
    ).otherwise(values["unit_price"])
    # Not a code of include/reference/currencies.csv (codes are upper case).
    broken["currency"] = F.when(is_kind("unknown_currency"), pick('"XXX"', '"usd"')).otherwise(
        values["currency"]
    )
    broken["event_time"] = _broken_event_time(
        values["event_time"],
        is_kind("unparsable_event_time"),
        is_kind("future_event_time"),
        details,
    )
    return _without_a_required_field(broken, is_kind, details.field_index)


def _broken_event_time(
    sound_time: Column, unparsable: Column, future: Column, details: _DefectDetails
) -> Column:
    """An unreadable event time (not a time, no such time, no offset) or a future one."""
    variant = F.pmod(details.variant, F.lit(3))
    return (
        F.when(
            unparsable,
            F.when(variant == 0, F.lit('"not-a-time"'))
            # a clock reading of 25:61 does not exist
            .when(
                variant == 1,
                F.concat(
                    F.substring(sound_time, 1, 12), F.lit("25:61"), F.substring(sound_time, 18, 64)
                ),
            )
            # no offset: the local time cannot be placed on the UTC time line
            .otherwise(F.concat(F.substring(sound_time, 1, 20), F.lit('"'))),
        )
        .when(future, details.future_time)
        .otherwise(sound_time)
    )


def _without_a_required_field(
    values: dict[str, Column], is_kind: Callable[[str], Column], field_index: Column
) -> dict[str, Column]:
    """The values with one required field null (``null_field``) or absent (``missing_field``)."""
    result: dict[str, Column] = {}
    for name in LANDING_FIELDS:
        value = values[name]
        if name in REQUIRED_FIELDS:
            targeted = field_index == REQUIRED_FIELDS.index(name)
            value = F.when(is_kind("null_field") & targeted, F.lit("null")).otherwise(value)
            value = F.when(~(is_kind("missing_field") & targeted), value)
        result[name] = value
    return result
