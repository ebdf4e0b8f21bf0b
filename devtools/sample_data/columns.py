"""Deterministic pseudo-random values and small Spark column helpers.

Every value of the sample data is a hash of the seed, a salt naming what it decides and
the key of the record it belongs to, so it does not depend on partitioning or order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.catalog import LANDING_FIELDS

_HASH_RANGE = 1 << 31
EPOCH = dt.date(1970, 1, 1)
SECONDS_PER_DAY = 86_400


class Hasher:
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


def lookup(values: Sequence[object], index: Column) -> Column:
    """values[index] for a 0-based index column, from a literal array."""
    return F.get(F.array(*[F.lit(v) for v in values]), index.cast("int"))


def with_columns(frame: DataFrame, **columns: Column) -> DataFrame:
    """The frame plus named columns.

    Building the record in such steps lets Spark compute each hash once per row instead
    of inlining it into every expression that uses it.
    """
    return frame.select("*", *[column.alias(name) for name, column in columns.items()])


def day_string(day_number: Column) -> Column:
    """YYYY-MM-DD of a day number, independent of the session time zone."""
    return F.date_add(F.lit(EPOCH), day_number.cast("int")).cast("string")


def local_time_text(local_epoch: Column) -> Column:
    """YYYY-MM-DDTHH:MM:SS of seconds since 1970-01-01 on a local clock."""
    second_of_day = F.pmod(local_epoch, F.lit(SECONDS_PER_DAY))
    return F.concat(
        day_string(F.floor(local_epoch / SECONDS_PER_DAY)),
        F.lit("T"),
        F.lpad(F.floor(second_of_day / 3600).cast("string"), 2, "0"),
        F.lit(":"),
        F.lpad(F.floor(F.pmod(second_of_day, F.lit(3600)) / 60).cast("string"), 2, "0"),
        F.lit(":"),
        F.lpad(F.pmod(second_of_day, F.lit(60)).cast("string"), 2, "0"),
    )


def offset_text(minutes: int) -> str:
    """+hh:mm / -hh:mm of a UTC offset in minutes."""
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def quote(value: Column) -> Column:
    """The value as a JSON string (the generated values need no escaping)."""
    return F.concat(F.lit('"'), value, F.lit('"'))


def json_line(values: Mapping[str, Column]) -> Column:
    """One JSON object of the fields in contract order; a null value leaves its field out."""
    pairs = [F.concat(F.lit(f'"{name}":'), values[name]) for name in LANDING_FIELDS]
    return F.concat(F.lit("{"), F.concat_ws(",", *pairs), F.lit("}"))
