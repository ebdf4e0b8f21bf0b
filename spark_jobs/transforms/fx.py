"""Reference data for currency conversion: the known currencies and daily USD rates.

Both files live in include/reference/ and are read on the driver, so a job needs no
shared file system for them on a cluster. fx_rates.csv holds the European Central
Bank's reference rates since 1999, converted to USD by ``python -m include.make_fx_rates``
(docs/REFERENCE_DATA.md); a run turns into a DataFrame only the rows its event dates
need, so its cost does not grow with the years the file covers.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType

from spark_jobs.catalog import FX_RATE, reference_path
from spark_jobs.cli import UserError

# Silver reports in USD: a USD amount converts at exactly 1 on any day, with no table
# row, so records of any era in the reporting currency need no reference rate.
REPORTING_CURRENCY = "USD"
ECB_HISTORY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip"
REFRESH_COMMAND = "python -m include.make_fx_rates --ecb-csv <file>"

# A day without a published rate (a weekend, a holiday) borrows the latest earlier rate
# at most this many days old: Thursday's rate covers Good Friday to Easter Monday (the
# longest gap in the ECB history), while a feed outage of a week is quarantined rather
# than guessed.
DEFAULT_MAX_STALENESS_DAYS = 4

FX_RATES_SCHEMA = StructType(
    [
        StructField("date", DateType(), False),
        StructField("currency", StringType(), False),
        StructField("rate_to_usd", FX_RATE, False),  # USD value of one unit of currency
    ]
)
DAILY_FX_SCHEMA = StructType(
    [
        StructField("fx_date", DateType(), False),  # the day a rate is wanted for
        StructField("currency", StringType(), False),
        StructField("fx_rate_to_usd", FX_RATE, False),
        StructField("fx_rate_date", DateType(), False),  # the day the rate was published
    ]
)


def load_currencies(path: str | None = None) -> list[str]:
    """The ISO-4217 codes silver accepts, from include/reference/currencies.csv."""
    return list(load_minor_units(path))


def load_minor_units(path: str | None = None) -> dict[str, int]:
    """Decimals of each currency silver accepts, in file order: the one reader of
    include/reference/currencies.csv."""
    with open(path or reference_path("currencies.csv"), newline="") as handle:
        return {row["currency"]: int(row["minor_units"]) for row in csv.DictReader(handle)}


def _published_rows(path: str | None) -> list[list[str]]:
    """The (date, currency, rate_to_usd) text rows of fx_rates.csv, header checked."""
    path = path or reference_path("fx_rates.csv")
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if header != [f.name for f in FX_RATES_SCHEMA.fields]:
            raise UserError(
                f"{path} starts with {','.join(header)!r}, not 'date,currency,rate_to_usd': "
                f"rewrite it with `{REFRESH_COMMAND}`"
            )
        return list(reader)


def _span(rows: list[list[str]]) -> tuple[dt.date, dt.date] | None:
    if not rows:
        return None
    days = [row[0] for row in rows]
    return dt.date.fromisoformat(min(days)), dt.date.fromisoformat(max(days))


def _rates_frame(
    spark: SparkSession, rows: list[list[str]], wanted: Callable[[str], bool]
) -> DataFrame:
    # ``wanted`` looks at the ISO date text: rows a run does not need are never parsed.
    parsed = [
        (dt.date.fromisoformat(day), currency, Decimal(rate))
        for day, currency, rate in rows
        if wanted(day)
    ]
    return spark.createDataFrame(parsed, FX_RATES_SCHEMA)


def published_span(path: str | None = None) -> tuple[dt.date, dt.date] | None:
    """The first and last day of include/reference/fx_rates.csv; None when it has no rows."""
    return _span(_published_rows(path))


def load_fx_rates(
    spark: SparkSession,
    path: str | None = None,
    first_date: dt.date | None = None,
    last_date: dt.date | None = None,
) -> DataFrame:
    """The published rates (date, currency, rate_to_usd) of include/reference/fx_rates.csv.

    Only the days from ``first_date`` to ``last_date`` (inclusive; open when None): the
    file spans decades, and every row sent to Spark costs driver time on each run.
    """
    first = first_date.isoformat() if first_date else ""
    last = last_date.isoformat() if last_date else "9999-12-31"
    return _rates_frame(spark, _published_rows(path), lambda day: first <= day <= last)


def _date_range(days: list[dt.date]) -> str:
    return f"event date {days[0]}" if len(days) == 1 else f"event dates {days[0]}..{days[-1]}"


def check_fx_coverage(
    event_dates: Iterable[dt.date],
    published: tuple[dt.date, dt.date] | None,
    max_staleness_days: int,
) -> None:
    """Raise UserError when ``event_dates`` run past the end of the reference rates.

    ``event_dates`` are those of records that need a rate (not in the reporting
    currency); ``published`` is published_span(). The table serves up to
    ``max_staleness_days`` after its last day. Dates beyond are a gap in the reference
    data, not in the records, and a refresh fixes them, so the run stops instead of
    quarantining whole days. Dates before its first day get no rate (NO_FX_RATE, per
    record): the ECB publishes none earlier, so one old record must not stop a day; a
    currency missing on a covered day is a NO_FX_RATE record too.
    """
    days = sorted(set(event_dates))
    if not days:
        return
    if published is None:
        raise UserError(
            f"include/reference/fx_rates.csv has no rates, so {_date_range(days)} of "
            f"non-{REPORTING_CURRENCY} records cannot be converted: download the ECB "
            f"history ({ECB_HISTORY_URL}) and run `{REFRESH_COMMAND}`"
        )
    _, last = published
    covered_until = last + dt.timedelta(days=max_staleness_days)
    if after := [d for d in days if d > covered_until]:
        raise UserError(
            f"FX reference rates end on {last} (used up to {max_staleness_days} day(s) "
            f"later); {_date_range(after)} of non-{REPORTING_CURRENCY} records are not "
            f"covered: download the ECB history ({ECB_HISTORY_URL}) and run "
            f"`{REFRESH_COMMAND}` (see docs/REFERENCE_DATA.md)"
        )


def fx_rates_for(
    spark: SparkSession,
    event_dates: Iterable[dt.date],
    max_staleness_days: int,
    path: str | None = None,
) -> DataFrame:
    """The published rates records on ``event_dates`` can use (load_fx_rates rows).

    Raises UserError (check_fx_coverage) when the table does not cover a date, before
    the caller has staged anything. A rate serves its day and the ``max_staleness_days``
    after it, so each event date takes the rates of itself and that many days before.
    """
    days = sorted(set(event_dates))
    if not days:  # every record is in USD (or will be rejected before its rate matters)
        return spark.createDataFrame([], FX_RATES_SCHEMA)
    rows = _published_rows(path)
    check_fx_coverage(days, _span(rows), max_staleness_days)
    # Event dates can be years apart (late data), so only the days that can serve one.
    wanted = {
        (day - dt.timedelta(days=age)).isoformat()
        for day in days
        for age in range(max_staleness_days + 1)
    }
    return _rates_frame(spark, rows, wanted.__contains__)


def daily_fx_rates(rates: DataFrame, max_staleness_days: int) -> DataFrame:
    """The rate to use for each (day, currency): the latest published on or before the day.

    A published rate covers its own day and the ``max_staleness_days`` after it; a day
    none covers has no row, so a lookup of it finds nothing (NO_FX_RATE in silver).
    The reporting currency needs no row: silver converts it at 1.
    """
    covered = rates.select(
        F.explode(F.sequence(F.col("date"), F.date_add("date", max_staleness_days))).alias(
            "fx_date"
        ),
        "currency",
        F.struct(F.col("date").alias("fx_rate_date"), F.col("rate_to_usd")).alias("published"),
    )
    latest = covered.groupBy("fx_date", "currency").agg(F.max("published").alias("published"))
    return latest.select(
        "fx_date",
        "currency",
        F.col("published.rate_to_usd").alias("fx_rate_to_usd"),
        F.col("published.fx_rate_date").alias("fx_rate_date"),
    )
