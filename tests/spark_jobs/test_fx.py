"""Daily USD rates: a day without a published rate borrows a recent earlier one, not an old one."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
from decimal import Decimal

from spark_jobs.fx import (
    DAILY_FX_SCHEMA,
    FX_RATES_SCHEMA,
    daily_fx_rates,
    load_currencies,
    load_fx_rates,
)
from spark_jobs.tables import reference_path

FRI, SAT, SUN, MON = (dt.date(2026, 3, 6) + dt.timedelta(days=n) for n in range(4))


def _rates(spark, rows):
    return spark.createDataFrame(
        [(d, c, Decimal(r)) for d, c, r in rows],
        FX_RATES_SCHEMA,
    )


def _lookup(daily) -> dict[tuple[dt.date, str], tuple[Decimal, dt.date]]:
    return {
        (r["fx_date"], r["currency"]): (r["fx_rate_to_usd"], r["fx_rate_date"])
        for r in daily.collect()
    }


def test_weekend_uses_fridays_rate_within_the_staleness_limit(spark):
    rates = _rates(spark, [(FRI, "EUR", "1.1"), (MON, "EUR", "1.2")])

    daily = _lookup(daily_fx_rates(rates, max_staleness_days=4))

    assert daily[(SAT, "EUR")] == (Decimal("1.10000000"), FRI)
    assert daily[(SUN, "EUR")] == (Decimal("1.10000000"), FRI)
    assert daily[(MON, "EUR")] == (Decimal("1.20000000"), MON)  # its own rate beats Friday's


def test_rate_older_than_the_staleness_limit_is_not_used(spark):
    rates = _rates(spark, [(FRI, "EUR", "1.1")])

    daily = _lookup(daily_fx_rates(rates, max_staleness_days=1))

    assert daily[(SAT, "EUR")] == (Decimal("1.10000000"), FRI)
    assert (SUN, "EUR") not in daily
    assert (SAT, "USD") not in daily  # a currency is never borrowed from another


def test_daily_rates_have_the_declared_columns(spark):
    daily = daily_fx_rates(_rates(spark, [(FRI, "EUR", "1.1")]), 0)
    assert [(f.name, f.dataType) for f in daily.schema.fields] == [
        (f.name, f.dataType) for f in DAILY_FX_SCHEMA.fields
    ]


def test_reference_rates_cover_every_currency_on_weekdays_and_usd_every_day(spark):
    with open(reference_path("fx_rates.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_day: dict[str, set[str]] = {}
    for row in rows:
        by_day.setdefault(row["date"], set()).add(row["currency"])
        if row["currency"] == "USD":
            assert row["rate_to_usd"] == "1.00000000"
        assert Decimal(row["rate_to_usd"]) > 0
    currencies = set(load_currencies())
    day = dt.date(2024, 1, 1)
    while day <= dt.date(2027, 12, 31):
        expected = currencies if day.weekday() < 5 else {"USD"}
        assert by_day.pop(day.isoformat()) == expected, day
        day += dt.timedelta(days=1)
    assert by_day == {}
    assert load_fx_rates(spark).count() == len(rows)


def test_reference_rates_are_what_the_script_writes():
    spec = importlib.util.spec_from_file_location(
        "make_fx_rates", reference_path("../make_fx_rates.py")
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with open(reference_path("fx_rates.csv"), newline="") as handle:
        rows = [tuple(r) for r in csv.reader(handle)]
    assert rows[0] == ("date", "currency", "rate_to_usd")
    assert rows[1:] == script.fx_rows()
