"""Nothing lost: bronze rows = silver rows + quarantined rows + counted duplicates."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from delta.tables import DeltaTable

from devtools.generate_purchases import EXPECTED_REASON, generate
from spark_jobs.catalog import SILVER_PURCHASES, SILVER_QUARANTINE
from spark_jobs.jobs import build_silver, ingest_bronze
from spark_jobs.quality.accounting import AccountingError, check_accounting

START, END = dt.date(2026, 4, 6), dt.date(2026, 4, 9)
NO_FOLDER = dt.date(2026, 4, 8)
ARGS = ["--start", str(START), "--end", str(END)]


@pytest.fixture(scope="module")
def feed(spark, tmp_path_factory):
    """Four generated landing days (one without a folder) run through both jobs' CLIs."""
    root = str(tmp_path_factory.mktemp("accounting") / "lakehouse")
    summary = generate(
        spark,
        root,
        START,
        END,
        users=50,
        seed=3,
        events_per_day=150,
        defect_rate=0.05,
        retry_rate=0.05,
        compress=True,
        skip_dates=(NO_FOLDER,),
    )
    assert ingest_bronze.main(["--root", root, *ARGS]) == 0
    assert build_silver.main(["--root", root, *ARGS]) == 0
    return root, summary


def test_every_landed_line_is_in_silver_quarantine_or_a_counted_duplicate(spark, feed):
    root, summary = feed
    rows = check_accounting(spark, root, START, END)

    for row in rows:
        day = summary.day(row.landing_date)
        assert row.balanced
        assert row.bronze == day.lines
        assert row.quarantine == sum(day.defects.values())
        assert row.duplicates == day.retries
    assert rows[2].bronze == 0 and rows[2].landing_date == NO_FOLDER


def test_quarantine_reasons_match_the_injected_defects(spark, feed):
    root, summary = feed
    quarantine = spark.read.format("delta").load(SILVER_QUARANTINE.path(root))
    reasons = Counter(r["reason"] for r in quarantine.select("reason").collect())
    expected = Counter()
    for kind, count in summary.defects.items():
        if kind in EXPECTED_REASON:
            expected[EXPECTED_REASON[kind]] += count
    assert reasons == expected


def test_a_lost_silver_row_fails_the_check_with_per_date_counts(spark, feed):
    root, _ = feed
    silver = DeltaTable.forPath(spark, SILVER_PURCHASES.path(root))
    victim = silver.toDF().where(f"_landing_date = DATE'{START}'").first()
    silver.delete(
        f"event_id = '{victim['event_id']}' AND event_date = DATE'{victim['event_date']}'"
    )

    with pytest.raises(AccountingError) as failure:
        check_accounting(spark, root, START, END)

    message = str(failure.value)
    assert f"landing date(s) {START}" in message
    assert "landing_date  bronze  silver" in message and "NO" in message
