"""--start/--end dates are read with pendulum and accept the forms date.fromisoformat reads."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from spark_jobs.cli import parse_date


def _fromisoformat(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _parse_date(value: str) -> dt.date | None:
    try:
        return parse_date(value)
    except argparse.ArgumentTypeError:
        return None


def _date_forms() -> list[str]:
    """Well-formed and out-of-range calendar and week dates, with both separator styles."""
    values = []
    for year in ("0000", "0001", "2020", "2024", "2025", "2026", "9999"):
        for month in range(20):
            for day in range(40):
                values += [f"{year}-{month:02d}-{day:02d}", f"{year}{month:02d}{day:02d}"]
                values += [f"{year}-{month:02d}{day:02d}", f"{year}{month:02d}-{day:02d}"]
        for week in range(60):
            values += [f"{year}-W{week:02d}", f"{year}W{week:02d}", f"{year}w{week:02d}"]
            for day in range(10):
                values += [f"{year}-W{week:02d}-{day}", f"{year}W{week:02d}{day}"]
                values += [f"{year}-W{week:02d}{day}", f"{year}W{week:02d}-{day}"]
    return values


def test_reads_the_same_dates_as_date_fromisoformat() -> None:
    # 2020 and 2026 have an ISO week 53, 2024 and 2025 do not.
    differ = [v for v in _date_forms() if _parse_date(v) != _fromisoformat(v)]
    assert differ == []
    assert type(parse_date("2026-03-01")) is dt.date  # not pendulum's Date subclass
    assert parse_date("2026-W09-1") == parse_date("2026W091") == dt.date(2026, 2, 23)
    assert parse_date("20240229") == dt.date(2024, 2, 29)


@pytest.mark.parametrize(
    "value",
    [
        "now",
        "today",
        "",
        "2026",
        "2026-03",
        "2026-060",
        "2026/03/01",
        "2026-03-01T00:00",
        "2026-03-01T00:00:00Z",
        " 2026-03-01",
        "2026-03-01\n",
        "P1D",
        "2026-03-01/2026-03-05",
        "２０２６-03-01",
        "2026-W00",
        "2025-W53",
        "2026-W01-0",
    ],
)
def test_other_forms_pendulum_knows_are_rejected(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected YYYY-MM-DD"):
        parse_date(value)


@pytest.mark.parametrize("value", ["20260301xy", "2026W091-0", "20260301٣"])
def test_a_basic_date_with_two_stray_characters_is_rejected(value: str) -> None:
    # Python 3.11's date.fromisoformat reads the first eight characters of such a
    # ten-byte string and drops the rest; parse_date rejects it.
    assert _fromisoformat(value) is not None
    with pytest.raises(argparse.ArgumentTypeError, match="expected YYYY-MM-DD"):
        parse_date(value)
