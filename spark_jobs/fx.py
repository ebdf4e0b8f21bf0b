"""Reference data for currency conversion: the known currencies and daily USD rates.

Both files live in include/reference/ and are read on the driver (a few thousand rows),
so a job needs no shared file system for them on a cluster.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType

from spark_jobs.tables import FX_RATE, reference_path

# A day without a published rate (a weekend, a holiday) borrows the latest earlier rate
# at most this many days old: Friday's rate covers Saturday to Monday's gap and a
# Friday holiday, while a feed outage of a week is quarantined rather than guessed.
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
    with open(path or reference_path("currencies.csv"), newline="") as handle:
        return [row["currency"] for row in csv.DictReader(handle)]


def load_fx_rates(spark: SparkSession, path: str | None = None) -> DataFrame:
    """The published rates (date, currency, rate_to_usd) of include/reference/fx_rates.csv."""
    with open(path or reference_path("fx_rates.csv"), newline="") as handle:
        rows = [
            (dt.date.fromisoformat(r["date"]), r["currency"], Decimal(r["rate_to_usd"]))
            for r in csv.DictReader(handle)
        ]
    return spark.createDataFrame(rows, FX_RATES_SCHEMA)


def daily_fx_rates(rates: DataFrame, max_staleness_days: int) -> DataFrame:
    """The rate to use for each (day, currency): the latest published on or before the day.

    A published rate covers its own day and the ``max_staleness_days`` after it; a day
    none covers has no row, so a lookup of it finds nothing (NO_FX_RATE in silver).
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
