"""Write include/reference/fx_rates.csv: daily USD rates of the reference currencies.

Deterministic (a seeded random walk), so rerunning it reproduces the file byte for byte:
``python include/make_fx_rates.py``. Like published reference rates, non-USD
currencies have no rate on Saturdays and Sundays; USD is 1 every day. ``rate_to_usd``
is the USD value of one unit of the currency, with 8 decimals.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
FIRST_DAY = dt.date(2024, 1, 1)
LAST_DAY = dt.date(2027, 12, 31)
SEED = 20240101

# (USD per unit on the first day, daily volatility): early-2024 levels.
START_LEVELS = {
    "EUR": (1.0950, 0.0045),
    "GBP": (1.2730, 0.0045),
    "JPY": (0.0069, 0.0060),
    "CAD": (0.7550, 0.0040),
    "AUD": (0.6810, 0.0060),
    "BRL": (0.2060, 0.0090),
    "INR": (0.0120, 0.0025),
    "CHF": (1.1880, 0.0050),
    "SEK": (0.0995, 0.0060),
}


def reference_currencies() -> list[str]:
    """Currency codes of include/reference/currencies.csv, in file order."""
    with (REFERENCE_DIR / "currencies.csv").open(newline="") as handle:
        return [row["currency"] for row in csv.DictReader(handle)]


def fx_rows() -> list[tuple[str, str, str]]:
    """(date, currency, rate_to_usd) rows, sorted by date then currency."""
    currencies = reference_currencies()
    unknown = sorted(set(currencies) - set(START_LEVELS) - {"USD"})
    if unknown:
        raise SystemExit(f"no start level for {', '.join(unknown)}: add it to START_LEVELS")
    rng = random.Random(SEED)
    levels = {code: START_LEVELS[code][0] for code in currencies if code != "USD"}
    rows = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        trading_day = day.weekday() < 5
        for code in sorted(currencies):
            if code == "USD":
                rows.append((day.isoformat(), code, f"{1:.8f}"))
            elif trading_day:
                rows.append((day.isoformat(), code, f"{levels[code]:.8f}"))
                levels[code] *= math.exp(rng.gauss(0.0, START_LEVELS[code][1]))
        day += dt.timedelta(days=1)
    return rows


def main() -> None:
    """Write the file next to currencies.csv."""
    target = REFERENCE_DIR / "fx_rates.csv"
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("date", "currency", "rate_to_usd"))
        writer.writerows(fx_rows())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
