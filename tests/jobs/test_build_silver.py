"""silver.purchases: typed, validated, deduplicated, in USD; every reject in quarantine."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from devtools.generate_purchases import generate
from spark_jobs import reasons
from spark_jobs.catalog import (
    BRONZE_PURCHASES,
    SILVER_CHANGES,
    SILVER_PURCHASES,
    SILVER_PURCHASES_SCHEMA,
    SILVER_QUARANTINE,
    landing_path,
    reference_path,
)
from spark_jobs.cli import EXIT_BAD_INPUT, DateRange, run_cli
from spark_jobs.config import PROJECT_ROOT
from spark_jobs.jobs import build_silver, ingest_bronze
from spark_jobs.quality import wap
from spark_jobs.quality.accounting import AccountingRow, check_accounting
from spark_jobs.transforms import silver
from spark_jobs.transforms.fx import daily_fx_rates, load_currencies, load_fx_rates
from tests.factories import (
    ingest,
    land,
    publish_ungated,
    purchase,
    run_stage,
    same_columns,
    table_rows,
    write_landing,
)

D1 = dt.date(2026, 3, 2)  # a Monday
D2 = dt.date(2026, 3, 3)
MISSING = object()


def record(event_id: str, **overrides: object) -> str:
    """One landing line: a sound USD purchase unless ``overrides`` say otherwise."""
    fields: dict[str, object] = {
        "event_id": event_id,
        "order_id": f"o-{event_id}",
        "user_id": "u1",
        "event_type": "purchase",
        "event_time": "2026-03-02T10:00:00Z",
        "sku": "S1",
        "category": "books",
        "quantity": 1,
        "unit_price": "10.00",
        "currency": "USD",
    }
    fields.update(overrides)
    return json.dumps({k: v for k, v in fields.items() if v is not MISSING}, separators=(",", ":"))


def run_silver(spark, root: str, start: dt.date, end: dt.date | None = None, staleness: int = 4):
    """Build and publish silver for [start, end] (gates skipped); returns the accounting."""
    days = DateRange(start, end or start)
    build_silver.build(spark, root, days, staleness)
    publish_ungated(spark, root, "silver", days, build_silver.outputs(root, days))
    return check_accounting(spark, root, days.start, days.end)


def reference_rate(day: str, currency: str) -> Decimal:
    with open(reference_path("fx_rates.csv"), newline="") as handle:
        for row in csv.DictReader(handle):
            if row["date"] == day and row["currency"] == currency:
                return Decimal(row["rate_to_usd"])
    raise KeyError((day, currency))


def usd(quantity: int, price: str, rate: Decimal) -> Decimal:
    return (quantity * Decimal(price) * rate).quantize(Decimal("0.0001"), ROUND_HALF_UP)


TZ_LINE = record(
    "e-tz",
    order_id="o1",
    event_time="2026-03-01T23:30:00-05:00",
    quantity=2,
    unit_price="19.99",
    currency="EUR",
)
# event_id -> (reason, words its detail must contain)
BAD_LINES = {
    "q-malformed": ('{"event_id":"q-malformed"', reasons.MALFORMED_JSON, ["q-malformed"]),
    "q-missing": (record("q-missing", user_id=MISSING), reasons.MISSING_FIELD, ["user_id"]),
    "q-null": (record("q-null", sku=None), reasons.MISSING_FIELD, ["sku"]),
    "q-type": (record("q-type", event_type="return"), reasons.INVALID_EVENT_TYPE, ["'return'"]),
    "q-time": (
        record("q-time", event_time="2026-03-02 10:00:00"),
        reasons.INVALID_EVENT_TIME,
        ["event_time", "'2026-03-02 10:00:00'"],
    ),
    "q-future": (
        record("q-future", event_time="2026-03-03T00:00:00Z"),
        reasons.FUTURE_EVENT_TIME,
        ["'2026-03-03T00:00:00Z'", "2026-03-02"],
    ),
    "q-qty-zero": (record("q-qty-zero", quantity=0), reasons.INVALID_QUANTITY, ["quantity", "'0'"]),
    "q-qty-frac": (record("q-qty-frac", quantity=2.5), reasons.INVALID_QUANTITY, ["'2.5'"]),
    "q-price-comma": (
        record("q-price-comma", unit_price="12,50"),
        reasons.INVALID_PRICE,
        ["unit_price", "'12,50'"],
    ),
    "q-price-text": (record("q-price-text", unit_price="abc"), reasons.INVALID_PRICE, ["'abc'"]),
    "q-price-negative": (
        record("q-price-negative", unit_price="-3.00"),
        reasons.INVALID_PRICE,
        ["'-3.00'"],
    ),
    "q-currency": (
        record("q-currency", currency="XXX"),
        reasons.UNKNOWN_CURRENCY,
        ["currency", "'XXX'"],
    ),
    "q-no-rate": (
        # The ECB reference rates start in 1999 but quote BRL only from 2008-01-02.
        record("q-no-rate", currency="BRL", event_time="2005-06-01T12:00:00Z"),
        reasons.NO_FX_RATE,
        ["'BRL'", "2005-06-01"],
    ),
    "q-dup-key": (
        record("q-dup-key")[:-1] + ',"quantity":3}',
        reasons.DUPLICATE_FIELD,
        ["quantity"],
    ),
    "q-identifier": (
        record("q-identifier", user_id="<b>u1</b>"),
        reasons.INVALID_IDENTIFIER,
        ["user_id", "'<b>u1</b>'"],
    ),
    "q-qty-huge": (
        record("q-qty-huge", quantity=10001),
        reasons.IMPLAUSIBLE_QUANTITY,
        ["quantity", "'10001'"],
    ),
    "q-amount": (
        record("q-amount", quantity=3, unit_price="400000"),
        reasons.IMPLAUSIBLE_AMOUNT,
        ["1200000", "USD"],
    ),
    # Both the event type and the quantity are wrong: the earlier check names it.
    "q-first-wins": (
        record("q-first-wins", event_type="return", quantity=0),
        reasons.INVALID_EVENT_TYPE,
        ["'return'"],
    ),
}


@pytest.fixture(scope="module")
def handwritten(spark, tmp_path_factory):
    """Two landing days of hand-written records, through bronze and silver."""
    root = str(tmp_path_factory.mktemp("handwritten") / "lakehouse")
    sources = {
        "a": write_landing(
            root,
            D1,
            "a.jsonl",
            [
                TZ_LINE,
                record(
                    "e-refund",
                    order_id="o1",
                    event_type="refund",
                    event_time="2026-03-02T10:00:00+01:00",
                    unit_price="19.99",
                ),
                record(
                    "e-weekend",
                    user_id="u2",
                    event_time="2026-02-28T12:00:00Z",
                    quantity=3,
                    unit_price="5.00",
                    currency="GBP",
                ),
                record("e-dup1", category="toys"),
                record("e-dup1", category="books"),
                record("e-dup2", sku="S-A"),
                *[line for line, _, _ in BAD_LINES.values()],
            ],
        ),
        "b": write_landing(root, D1, "b.jsonl", [record("e-dup2", sku="S-B")]),
        # A retried delivery of e-tz a day later, and a new event.
        "c": write_landing(
            root,
            D2,
            "c.jsonl",
            [TZ_LINE, record("e-new", user_id="u3", event_time="2026-03-03T08:00:00Z")],
        ),
    }
    ingest(spark, root, D1, D2)
    accounting = run_silver(spark, root, D1, D2)
    purchases = spark.read.format("delta").load(SILVER_PURCHASES.path(root))
    return {
        "root": root,
        "sources": sources,
        "accounting": accounting,
        "silver": {r["event_id"]: r for r in purchases.collect()},
        "schema": purchases.schema,
        "quarantine": spark.read.format("delta").load(SILVER_QUARANTINE.path(root)).collect(),
        "changes": table_rows(spark, root, SILVER_CHANGES),
    }


def test_each_bad_record_is_quarantined_with_its_reason_and_detail(handwritten):
    quarantine = {r["event_id"]: r for r in handwritten["quarantine"]}
    # A malformed line has no parsed fields: it is found by its raw text.
    malformed = [r for r in handwritten["quarantine"] if r["reason"] == reasons.MALFORMED_JSON]
    assert len(malformed) == 1
    quarantine["q-malformed"] = malformed[0]
    assert set(quarantine) - {None} == set(BAD_LINES)
    for event_id, (line, reason, words) in BAD_LINES.items():
        row = quarantine[event_id]
        assert (row["reason"], row["_raw"]) == (reason, line), event_id
        assert all(w in row["reason_detail"] for w in words), (event_id, row["reason_detail"])
        assert row["_source_file"] == handwritten["sources"]["a"]
        assert row["_landing_date"] == D1
    # Unreadable files, long lines and bad encodings: tests/jobs/test_bad_input_corpus.py.
    by_line = {reasons.UNREADABLE_FILE, reasons.LINE_TOO_LONG, reasons.INVALID_ENCODING}
    assert set(reasons.REASONS) - by_line == {reason for _, reason, _ in BAD_LINES.values()}


def test_first_failing_check_names_the_record(handwritten):
    row = next(r for r in handwritten["quarantine"] if r["event_id"] == "q-first-wins")
    assert row["reason"] == reasons.INVALID_EVENT_TYPE


def test_silver_has_the_declared_columns(handwritten):
    assert same_columns(handwritten["schema"], SILVER_PURCHASES_SCHEMA)


def test_event_time_across_midnight_becomes_the_next_utc_day(handwritten):
    row = handwritten["silver"]["e-tz"]
    assert row["event_time"] == dt.datetime(2026, 3, 2, 4, 30)
    assert row["event_date"] == dt.date(2026, 3, 2)
    assert row["event_utc_offset_minutes"] == -300


def test_amount_is_quantity_times_price_times_the_days_rate_rounded_half_up(handwritten):
    row = handwritten["silver"]["e-tz"]
    rate = reference_rate("2026-03-02", "EUR")
    assert (row["quantity"], row["unit_price"], row["currency"]) == (2, Decimal("19.99"), "EUR")
    assert (row["fx_rate_to_usd"], row["fx_rate_date"]) == (rate, dt.date(2026, 3, 2))
    assert row["amount_usd"] == usd(2, "19.99", rate)


def test_weekend_event_uses_the_latest_earlier_rate(handwritten):
    row = handwritten["silver"]["e-weekend"]
    friday_rate = reference_rate("2026-02-27", "GBP")
    assert (row["fx_rate_date"], row["fx_rate_to_usd"]) == (dt.date(2026, 2, 27), friday_rate)
    assert row["amount_usd"] == usd(3, "5.00", friday_rate)


def test_rate_older_than_the_staleness_limit_quarantines_no_fx_rate(spark, handwritten):
    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(handwritten["root"]))
    validated = silver.validate(
        bronze, load_currencies(), daily_fx_rates(load_fx_rates(spark), 0), 0
    )
    row = validated.where(F.col("event_id") == "e-weekend").select("reason").first()
    assert row["reason"] == reasons.NO_FX_RATE


def test_refund_is_negative_and_keeps_the_order_it_refunds(handwritten):
    refund = handwritten["silver"]["e-refund"]
    assert (refund["event_type"], refund["order_id"]) == ("refund", "o1")
    assert refund["amount_usd"] == Decimal("-19.9900")
    assert refund["event_time"] == dt.datetime(2026, 3, 2, 9, 0)
    assert refund["event_utc_offset_minutes"] == 60


def test_duplicates_in_a_landing_day_keep_the_smallest_file_then_line(handwritten):
    assert handwritten["silver"]["e-dup1"]["category"] == "books"  # '..."books"' < '..."toys"'
    assert handwritten["silver"]["e-dup2"]["sku"] == "S-A"
    assert handwritten["silver"]["e-dup2"]["_source_file"] == handwritten["sources"]["a"]


def test_retry_landing_a_day_later_is_a_duplicate_of_the_first_delivery(handwritten):
    first = handwritten["silver"]["e-tz"]
    assert (first["_landing_date"], first["_source_file"]) == (D1, handwritten["sources"]["a"])
    assert handwritten["silver"]["e-new"]["_landing_date"] == D2
    assert sorted(handwritten["silver"]) == sorted(
        ["e-tz", "e-refund", "e-weekend", "e-dup1", "e-dup2", "e-new"]
    )


def test_late_purchase_lands_in_its_event_day_and_is_reported_changed(handwritten):
    assert handwritten["silver"]["e-weekend"]["event_date"] == dt.date(2026, 2, 28)
    assert handwritten["changes"] == [
        (D1, dt.date(2026, 2, 28), "u2", 1),
        (D1, dt.date(2026, 3, 2), "u1", 4),  # e-tz, e-refund, e-dup1, e-dup2
        (D2, dt.date(2026, 3, 3), "u3", 1),
    ]


def test_nothing_is_lost_on_the_handwritten_days(handwritten):
    assert handwritten["accounting"] == [
        AccountingRow(D1, bronze=25, silver=5, quarantine=18, duplicates=2),
        AccountingRow(D2, bronze=2, silver=1, quarantine=0, duplicates=1),
    ]


def test_earlier_landing_wins_even_when_processed_after_a_later_one(spark, lakehouse):
    line = record("x1", event_time="2026-03-02T09:00:00Z")
    first = write_landing(lakehouse, D1, "a.jsonl", [line])
    write_landing(lakehouse, D2, "a.jsonl", [line])
    ingest(spark, lakehouse, D1, D2)

    run_silver(spark, lakehouse, D2)
    accounting = run_silver(spark, lakehouse, D1)

    rows = spark.read.format("delta").load(SILVER_PURCHASES.path(lakehouse)).collect()
    assert [(r["event_id"], r["_landing_date"], r["_source_file"]) for r in rows] == [
        ("x1", D1, first)
    ]
    assert accounting == [AccountingRow(D1, bronze=1, silver=1, quarantine=0, duplicates=0)]
    assert check_accounting(spark, lakehouse, D2, D2) == [
        AccountingRow(D2, bronze=1, silver=0, quarantine=0, duplicates=1)
    ]


def test_rerun_after_a_record_vanished_removes_it_and_reports_the_pair(spark, lakehouse):
    late = record("r1", user_id="u1", event_time="2026-03-01T12:00:00Z")
    kept = record("r2", user_id="u2")
    write_landing(lakehouse, D1, "a.jsonl", [late, kept])
    ingest(spark, lakehouse, D1)
    run_silver(spark, lakehouse, D1)

    write_landing(lakehouse, D1, "a.jsonl", [kept])
    ingest(spark, lakehouse, D1)
    run_silver(spark, lakehouse, D1)

    rows = spark.read.format("delta").load(SILVER_PURCHASES.path(lakehouse)).collect()
    assert [r["event_id"] for r in rows] == ["r2"]
    assert table_rows(spark, lakehouse, SILVER_CHANGES) == [
        (D1, dt.date(2026, 3, 1), "u1", 0),
        (D1, dt.date(2026, 3, 2), "u2", 1),
    ]


# A generated feed: three landing days with late, retried, refunded and broken records.
G1, G3 = dt.date(2026, 3, 9), dt.date(2026, 3, 11)
GENERATED_DAYS = list(DateRange(G1, G3).days())
SILVER_TABLES = (SILVER_PURCHASES, SILVER_QUARANTINE, SILVER_CHANGES)


def copy_landing(source_root: str, root: str) -> None:
    shutil.copytree(landing_path(source_root), landing_path(root))


def snapshot(spark, root: str, tables=(BRONZE_PURCHASES, *SILVER_TABLES)) -> dict:
    """Every row of each table, with the lakehouse root taken out of file names."""
    prefix = f"file:{root}"
    return {
        t.name: [
            tuple(v.replace(prefix, "<root>") if isinstance(v, str) else v for v in row)
            for row in table_rows(spark, root, t)
        ]
        for t in tables
    }


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    """A generated feed run day by day, and the tables that gives."""
    base = tmp_path_factory.mktemp("generated")
    feed = str(base / "feed")
    generate(
        spark,
        feed,
        G1,
        G3,
        users=40,
        seed=7,
        events_per_day=120,
        defect_rate=0.05,
        late_rate=0.1,
        retry_rate=0.05,
        skip_dates=(),
    )
    daily = str(base / "daily")
    copy_landing(feed, daily)
    for day in GENERATED_DAYS:
        ingest(spark, daily, day)
        run_silver(spark, daily, day)
    return {"base": base, "feed": feed, "daily": daily, "tables": snapshot(spark, daily)}


def test_rerunning_a_day_gives_identical_tables(spark, generated):
    ingest(spark, generated["daily"], GENERATED_DAYS[1])
    run_silver(spark, generated["daily"], GENERATED_DAYS[1])

    assert snapshot(spark, generated["daily"]) == generated["tables"]
    assert all(generated["tables"][t.name] for t in SILVER_TABLES)


def test_backfill_equals_the_same_days_run_one_by_one(spark, generated):
    backfill = str(generated["base"] / "backfill")
    copy_landing(generated["feed"], backfill)

    ingest(spark, backfill, G1, G3)
    accounting = run_silver(spark, backfill, G1, G3)

    assert snapshot(spark, backfill) == generated["tables"]
    assert sum(r.duplicates for r in accounting) > 0


def test_a_run_killed_between_publishes_heals_on_rerun(spark, generated):
    root = str(generated["base"] / "killed")
    copy_landing(generated["feed"], root)
    days = DateRange(G1, G3)
    ingest(spark, root, G1, G3)
    build_silver.build(spark, root, days, 4)
    purchases_only = build_silver.outputs(root, days)[0]
    purchases_only.publish(
        spark,
        wap.read_staged(spark, root, SILVER_PURCHASES, days.key),
        SILVER_PURCHASES.path(root),
    )  # ... and the process dies before quarantine and changes are published

    run_silver(spark, root, G1, G3)

    assert snapshot(spark, root) == generated["tables"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-02-30"], "invalid date '2026-02-30'"),
        (["--start", "2026-03-02", "--end", "2026-03-01"], "before --start"),
        (["--start", "2026-03-02", "--fx-max-staleness-days", "-1"], "whole number >= 0"),
        (["--start", "2026-03-02"], "no bronze table"),
    ],
)
def test_bad_input_exits_2_with_one_line(spark, lakehouse, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_silver.main, ["--root", lakehouse, *args])
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_bronze_never_ingested_for_a_date_exits_2(spark, lakehouse, capsys):
    write_landing(lakehouse, D1, "a.jsonl", [record("e1")])
    ingest(spark, lakehouse, D1)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_silver.main, ["--root", lakehouse, "--start", str(D1), "--end", str(D2)])
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert f"not ingested landing date(s) {D2}" in capsys.readouterr().err


def test_unwritable_root_exits_2_from_the_command_line(tmp_path):
    root = tmp_path / "a-file"
    root.write_text("not a folder")
    command = [sys.executable, "-m", "spark_jobs.jobs.build_silver", "--root", str(root / "lake")]
    result = subprocess.run(
        [*command, "--start", "2026-03-02"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.strip().count("\n") == 0 and "cannot create" in result.stderr


def test_silver_module_runs_as_a_script_for_spark_submit():
    result = subprocess.run(
        [sys.executable, str(Path(build_silver.__file__)), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "--fx-max-staleness-days" in result.stdout


def test_one_implausible_record_is_quarantined_and_the_rest_of_the_day_publishes(spark, lakehouse):
    # Issue 12: one line beyond a record limit used to fail the silver gate for the day.
    good = [purchase(f"g{n}", f"u{n % 7}", "2026-03-02T10:00:00Z") for n in range(50)]
    big_yen = {
        **purchase("jpy", "u1", "2026-03-02T11:00:00Z"),
        "unit_price": "1200000",
        "currency": "JPY",
    }
    land(lakehouse, D1, [*good, big_yen, purchase("huge", "u2", "2026-03-02T12:00:00Z", 10001)])

    run_stage(ingest_bronze, lakehouse, D1)
    run_stage(build_silver, lakehouse, D1)

    published = spark.read.format("delta").load(SILVER_PURCHASES.path(lakehouse))
    quarantine = spark.read.format("delta").load(SILVER_QUARANTINE.path(lakehouse)).collect()
    assert published.count() == 51
    assert published.where(F.col("event_id") == "jpy").count() == 1
    assert [(r["event_id"], r["reason"]) for r in quarantine] == [("huge", "IMPLAUSIBLE_QUANTITY")]
    assert "'10001'" in quarantine[0]["reason_detail"]
