"""The Great Expectations gates: suites that match the tables, blocking and warning misses,
reports a person can open, and a publish that happens only when the gate passes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from spark_jobs.catalog import (
    BRONZE_PURCHASES,
    GOLD_USER_DAILY,
    GOLD_USER_FEATURES,
    SILVER_PURCHASES,
    SILVER_QUARANTINE,
    Table,
    reports_path,
)
from spark_jobs.cli import GateFailed
from spark_jobs.quality import gates
from spark_jobs.quality.wap import audit_and_publish, latest_version, replace_where, stage_outputs

DAY = dt.date(2026, 3, 2)
UTC = dt.UTC


def at(day: dt.date, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def frame(spark: SparkSession, table: Table, rows: list[dict]) -> DataFrame:
    """Rows given as dicts, in the table's declared schema."""
    names = [f.name for f in table.schema.fields]
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], table.schema)


def gold_daily_row(user: str, day: dt.date = DAY, **changes: object) -> dict:
    row = {
        "user_id": user,
        "event_date": day,
        "orders": 1,
        "items": 2,
        "gross_usd": Decimal("22.0000"),
        "refunds_usd": Decimal("0.0000"),
        "net_usd": Decimal("22.0000"),
        "refund_count": 0,
        "distinct_categories": 1,
        "first_event_time": at(day, 9),
        "last_event_time": at(day, 17, 30),
    }
    row.update(changes)
    return row


def silver_row(n: int, day: dt.date = DAY, **changes: object) -> dict:
    row = {
        "event_id": f"e{n}",
        "order_id": f"o{n}",
        "user_id": f"u{n % 3}",
        "event_type": "purchase",
        "event_time": at(day, 10, n % 60),
        "event_date": day,
        "event_utc_offset_minutes": 60,
        "sku": f"sku-{n}",
        "category": "books" if n % 2 else None,
        "quantity": 2,
        "unit_price": Decimal("10.0000"),
        "currency": "EUR",
        "fx_rate_to_usd": Decimal("1.10000000"),
        "fx_rate_date": day,
        "amount_usd": Decimal("22.0000"),
        "_source_file": f"landing/purchases/dt={day}/part-0.jsonl",
        "_landing_date": day,
        "_ingested_at": at(day + dt.timedelta(days=1)),
    }
    row.update(changes)
    return row


def bronze_row(n: int, day: dt.date = DAY) -> dict:
    fields = {
        "event_id": f"e{n}",
        "order_id": f"o{n}",
        "user_id": f"u{n}",
        "event_type": "purchase",
        "event_time": f"{day}T10:00:00+01:00",
        "sku": f"sku-{n}",
        "category": None,
        "quantity": "2",
        "unit_price": "10.00",
        "currency": "EUR",
    }
    return {
        **fields,
        "_raw": json.dumps(fields),
        "_is_malformed": False,
        "_source_file": f"landing/purchases/dt={day}/part-0.jsonl",
        "_ingested_at": at(day + dt.timedelta(days=1)),
        "_landing_date": day,
    }


def quarantine_row(n: int, day: dt.date = DAY) -> dict:
    return {
        "reason": "UNKNOWN_CURRENCY",
        "reason_detail": "currency 'XXX' is not in the reference list",
        "event_id": f"q{n}",
        "user_id": f"u{n}",
        "_raw": json.dumps({"event_id": f"q{n}", "currency": "XXX"}),
        "_source_file": f"landing/purchases/dt={day}/part-0.jsonl",
        "_landing_date": day,
        "_ingested_at": at(day + dt.timedelta(days=1)),
    }


def feature_row(user: str, as_of: dt.date = DAY) -> dict:
    first = as_of - dt.timedelta(days=40)
    last = as_of - dt.timedelta(days=3)
    row: dict[str, object] = {"user_id": user, "as_of_date": as_of}
    for days, orders in ((7, 1), (30, 2), (90, 3)):
        row.update(
            {
                f"orders_{days}d": orders,
                f"items_{days}d": 2 * orders,
                f"net_usd_{days}d": Decimal(22 * orders),
                f"refunds_usd_{days}d": Decimal("0"),
                f"active_days_{days}d": orders,
                f"aov_usd_{days}d": 22.0,
            }
        )
    row.update(
        {
            "first_purchase_date": first,
            "last_purchase_date": last,
            "lifetime_orders": 3,
            "lifetime_net_usd": Decimal("66.0000"),
            "days_since_last_purchase": 3,
            "top_category_90d": "books",
            "frequency": 2,
            "recency": (last - first).days,
            "T": (as_of - first).days,
            "monetary_value": 22.0,
            "feature_ts": at(as_of + dt.timedelta(days=1)),
            "available_at": at(as_of + dt.timedelta(days=1)),
        }
    )
    return row


def training_frame(spark: SparkSession) -> DataFrame:
    rows = [
        (0, "u0", at(DAY, 12), 1, at(DAY), at(DAY), 3),
        (1, "u1", at(DAY, 12), 0, at(DAY - dt.timedelta(days=1)), at(DAY), 1),
        (2, "u2", at(DAY, 12), 0, None, None, None),
    ]
    schema = (
        "spine_row_id long, user_id string, ts timestamp, label int, "
        "feature_ts timestamp, available_at timestamp, orders_7d long"
    )
    return spark.createDataFrame(rows, schema)


def params(day: dt.date = DAY, **extra: object) -> dict[str, object]:
    return {"start": str(day), "end": str(day), **extra}


def correct_frame(spark: SparkSession, suite: str) -> tuple[Table, DataFrame]:
    """A small, correct frame of the table a suite gates."""
    if suite == "bronze_purchases":
        return BRONZE_PURCHASES, frame(spark, BRONZE_PURCHASES, [bronze_row(n) for n in range(5)])
    if suite == "silver_purchases":
        rows = [silver_row(n) for n in range(5)]
        rows.append(
            silver_row(
                5,
                event_type="refund",
                order_id="o1",
                quantity=1,
                amount_usd=Decimal("-11.0000"),
                event_date=DAY - dt.timedelta(days=1),
                event_time=at(DAY - dt.timedelta(days=1), 23, 50),
                fx_rate_date=DAY - dt.timedelta(days=1),
            )
        )
        return SILVER_PURCHASES, frame(spark, SILVER_PURCHASES, rows)
    if suite == "silver_quarantine":
        return SILVER_QUARANTINE, frame(
            spark, SILVER_QUARANTINE, [quarantine_row(n) for n in range(2)]
        )
    if suite == "gold_user_daily":
        rows = [gold_daily_row(f"u{n}") for n in range(5)]
        return GOLD_USER_DAILY, frame(spark, GOLD_USER_DAILY, rows)
    if suite == "gold_user_features":
        return GOLD_USER_FEATURES, frame(
            spark, GOLD_USER_FEATURES, [feature_row(f"u{n}") for n in range(4)]
        )
    if suite == "training_set":
        return Table(
            "training_set", "training/churn", training_frame(spark).schema
        ), training_frame(spark)
    raise AssertionError(suite)


SUITES = sorted(p.stem for p in gates.suite_file("x").parent.glob("*.json"))


def test_every_gated_table_has_a_suite_file() -> None:
    assert SUITES == [
        "bronze_purchases",
        "gold_user_daily",
        "gold_user_features",
        "silver_purchases",
        "silver_quarantine",
        "training_set",
    ]
    for table in (BRONZE_PURCHASES, SILVER_PURCHASES, SILVER_QUARANTINE, GOLD_USER_DAILY):
        assert gates.suite_name_for(table) in SUITES


@pytest.mark.parametrize("suite", SUITES)
def test_suite_passes_a_correct_frame_of_its_table_without_warnings(
    spark: SparkSession, lakehouse: str, suite: str
) -> None:
    table, rows = correct_frame(spark, suite)
    # silver_rows: the quarantine share is measured against the stage's kept records.
    result = gates.validate_table(
        spark, lakehouse, table, rows, params(silver_rows=98), f"{DAY}_{DAY}"
    )
    assert result.suite == suite
    assert (result.failed, result.warnings) == ([], [])
    assert result.passed
    assert result.evaluated == len(gates.load_suite(suite)["expectations"])


def publish_gold_day(
    spark: SparkSession,
    root: str,
    rows: list[dict],
    day: dt.date = DAY,
    rebuilt_from: dt.date | None = None,
    **extra,
):
    """Stage gold.user_daily rows of landing date ``day`` (event days ``rebuilt_from``
    to ``day``, default ``day`` alone) and run its gate and publish."""
    run_key = f"{day}_{day}"
    stage_outputs(spark, root, run_key, {GOLD_USER_DAILY: frame(spark, GOLD_USER_DAILY, rows)})
    from spark_jobs.quality.wap import Output

    rebuilt = f"event_date >= DATE'{rebuilt_from or day}' AND event_date <= DATE'{day}'"
    output = Output(GOLD_USER_DAILY, replace_where(rebuilt, GOLD_USER_DAILY))
    return audit_and_publish(spark, root, "gold", run_key, [output], params(day, **extra))


def test_passing_day_publishes_and_moves_the_table_version(
    spark: SparkSession, lakehouse: str
) -> None:
    path = GOLD_USER_DAILY.path(lakehouse)
    first = publish_gold_day(spark, lakehouse, [gold_daily_row("u1"), gold_daily_row("u2")])
    assert first.published and first.versions == {"gold.user_daily": 0}
    next_day = DAY + dt.timedelta(days=1)
    second = publish_gold_day(spark, lakehouse, [gold_daily_row("u1", next_day)], next_day)
    assert second.versions == {"gold.user_daily": 1}
    assert second.row_counts == {"gold.user_daily": 1}
    published = sorted(
        (r.user_id, r.event_date) for r in spark.read.format("delta").load(path).collect()
    )
    assert published == [("u1", DAY), ("u1", next_day), ("u2", DAY)]


VIOLATIONS = {
    "duplicated user-day": (
        [gold_daily_row("u1"), gold_daily_row("u1", orders=2, items=4), gold_daily_row("u2")],
        "expect_compound_columns_to_be_unique [user_id, event_date]",
        "2 of 3 rows unexpected",
    ),
    "negative item count": (
        [gold_daily_row("u1", items=-3, orders=0, refund_count=1), gold_daily_row("u2")],
        "expect_column_values_to_be_between [items]",
        "e.g. -3",
    ),
    "date after the run": (
        [gold_daily_row("u1", DAY + dt.timedelta(days=5)), gold_daily_row("u2")],
        "expect_column_values_to_be_between [event_date]",
        "e.g. 2026-03-07",
    ),
}


def test_violations_publish_nothing_and_say_what_and_where(
    spark: SparkSession, lakehouse: str
) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    publish_gold_day(spark, lakehouse, [gold_daily_row("u0", yesterday)], yesterday)
    path = GOLD_USER_DAILY.path(lakehouse)
    before = spark.read.format("delta").load(path).collect()

    for violation, (rows, expectation, observed) in VIOLATIONS.items():
        with pytest.raises(GateFailed) as failure:
            publish_gold_day(spark, lakehouse, rows)

        assert latest_version(spark, path) == 0, violation
        assert spark.read.format("delta").load(path).collect() == before, violation
        message = str(failure.value)
        assert "published nothing" in message, violation
        assert expectation in message, violation
        assert observed in message, violation
        report = message.split("report: ")[1].splitlines()[0]
        assert Path(report).is_file(), violation
        assert "gate FAILED" in Path(report).read_text(), violation


def refund_heavy_day() -> dict:
    # A refund of an earlier order lands on a day with a smaller purchase: worth a look,
    # not a reason to hold the day back.
    return gold_daily_row(
        "u1",
        gross_usd=Decimal("5.0000"),
        refunds_usd=Decimal("40.0000"),
        net_usd=Decimal("-35.0000"),
        refund_count=1,
    )


def test_warn_level_miss_publishes_and_is_reported(spark: SparkSession, lakehouse: str) -> None:
    result = publish_gold_day(spark, lakehouse, [refund_heavy_day(), gold_daily_row("u2")])

    assert result.published
    gate = result.gate_results["gold.user_daily"]
    assert gate.passed and gate.failed == []
    assert [(w["expectation"], w["columns"]) for w in gate.warnings] == [
        ("expect_column_values_to_satisfy_condition", "gross_usd")
    ]
    # The warning carries its count from the one validation; examples are opt-in.
    assert "condition=gross_usd >= refunds_usd" in gate.summary()
    assert "observed 1 of 2 rows unexpected (50.00%)" in gate.summary()
    assert gate.warnings[0]["examples"] == []
    [entry] = read_index(lakehouse)
    assert (entry["success"], entry["failed"], entry["warned"]) == (True, 0, 1)
    assert "WARN" in Path(gate.report_path).read_text()


def test_warning_examples_setting_adds_example_values_to_warnings(
    spark: SparkSession, lakehouse: str
) -> None:
    result = publish_gold_day(
        spark, lakehouse, [refund_heavy_day(), gold_daily_row("u2")], warning_examples=3
    )

    [warning] = result.gate_results["gold.user_daily"].warnings
    assert warning["examples"] == [Decimal("5.0000")]  # gross_usd of the row that missed
    assert warning["observed"] == "1 of 2 rows unexpected (50.00%)"


def read_index(root: str) -> list[dict]:
    lines = Path(reports_path(root), "index.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_validation_leaves_html_json_and_an_index_line(
    spark: SparkSession, lakehouse: str
) -> None:
    with pytest.raises(GateFailed):
        publish_gold_day(spark, lakehouse, [gold_daily_row("u1", items=-1)])
    publish_gold_day(spark, lakehouse, [gold_daily_row("u1")])

    entries = read_index(lakehouse)
    assert [(e["table"], e["run_key"], e["success"]) for e in entries] == [
        ("gold.user_daily", f"{DAY}_{DAY}", False),
        ("gold.user_daily", f"{DAY}_{DAY}", True),
    ]
    assert entries[0]["failed"] >= 1 and entries[0]["start"] == str(DAY)
    for entry in entries:
        assert entry["report"].startswith(f"gold_user_daily/{DAY}_{DAY}/")
        html = Path(reports_path(lakehouse), entry["report"]).read_text()
        assert "Great Expectations" in html and "gold_user_daily" in html
        result = json.loads(Path(reports_path(lakehouse), entry["result"]).read_text())
        assert result["success"] is entry["success"]
        assert len(result["results"]) == entry["evaluated"]


def test_row_count_collapse_against_the_previous_day_blocks(
    spark: SparkSession, lakehouse: str
) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    users = [gold_daily_row(f"u{n}", yesterday) for n in range(30)]
    publish_gold_day(spark, lakehouse, users, yesterday, row_count_min_baseline=10)

    with pytest.raises(GateFailed) as failure:
        publish_gold_day(spark, lakehouse, [gold_daily_row("u1")], row_count_min_baseline=10)

    message = str(failure.value)
    # 30 rows yesterday: today's single row is below 30 / 10 (fail) and 30 / 1.5 (warn).
    assert "FAIL expect_table_row_count_to_be_between" in message
    assert "min_value=3" in message and "observed 1" in message
    assert "WARN expect_table_row_count_to_be_between" in message


def test_late_rows_rebuilding_earlier_days_scale_the_expected_row_count(
    spark: SparkSession, lakehouse: str
) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    publish_gold_day(spark, lakehouse, [gold_daily_row(f"u{n}", yesterday) for n in range(30)],
                     yesterday, row_count_min_baseline=10)  # fmt: skip
    # The landing date rebuilds three event days of 30 users: 90 rows, 3x yesterday's 30,
    # which a per-landing-day band (fail above 2x) would block.
    days = [DAY - dt.timedelta(days=back) for back in (2, 1, 0)]
    rows = [gold_daily_row(f"u{n}", day) for day in days for n in range(30)]
    band = {"row_count_min_baseline": 10, "row_count_fail_ratio": 2}
    # A stage that says how many days it rebuilt is taken at its word (build_gold
    # passes staged_days): one day claimed, 90 rows against a limit of 60.
    with pytest.raises(GateFailed, match="max_value=60; observed 90"):
        publish_gold_day(spark, lakehouse, rows, DAY, rebuilt_from=days[0], staged_days=1, **band)
    # Without it the gate counts the staged days itself.
    result = publish_gold_day(spark, lakehouse, rows, DAY, rebuilt_from=days[0], **band)
    assert result.published and result.row_counts == {"gold.user_daily": 90}
    told = publish_gold_day(
        spark, lakehouse, rows, DAY, rebuilt_from=days[0], staged_days=3, **band
    )
    assert told.published


@pytest.mark.parametrize(
    ("quarantined", "passed", "warned"), [(2, True, 0), (10, True, 1), (30, False, 1)]
)
def test_quarantine_share_warns_then_blocks(
    spark: SparkSession, lakehouse: str, quarantined: int, passed: bool, warned: int
) -> None:
    rows = frame(spark, SILVER_QUARANTINE, [quarantine_row(n) for n in range(quarantined)])
    result = gates.validate_table(
        spark,
        lakehouse,
        SILVER_QUARANTINE,
        rows,
        params(silver_rows=100 - quarantined),
        f"{DAY}_{DAY}",
    )
    # Of 100 records, 5% may be quarantined without a word and 25% at most.
    assert result.passed is passed
    assert len(result.warnings) == warned


def test_settings_come_from_environment_then_gate_params() -> None:
    settings = gates.GateSettings.resolve(
        {"quarantine_fail_share": "0.5"},
        {"LAKEHOUSE_GATE_QUARANTINE_FAIL_SHARE": "0.1", "LAKEHOUSE_GATE_MAX_LATENESS_DAYS": "7"},
    )
    assert settings.quarantine_fail_share == 0.5
    assert settings.max_lateness_days == 7
    assert settings.row_count_warn_ratio == gates.GateSettings().row_count_warn_ratio


def test_importing_the_gates_does_not_import_great_expectations() -> None:
    code = (
        "import sys, spark_jobs.quality.gates, spark_jobs.quality.wap; "
        "print('great_expectations' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_row_count_band_follows_the_tables_catalog_entry(
    spark: SparkSession, lakehouse: str
) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    users = [gold_daily_row(f"u{n}", yesterday) for n in range(30)]
    publish_gold_day(spark, lakehouse, users, yesterday, row_count_min_baseline=10)
    days = [DAY - dt.timedelta(days=back) for back in (2, 1, 0)]
    staged = frame(spark, GOLD_USER_DAILY, [gold_daily_row("u1", day) for day in days])
    settings = gates.GateSettings(row_count_min_baseline=10)

    def band(table: Table) -> dict:
        return gates.build_parameters(
            spark, lakehouse, table, params(), f"{DAY}_{DAY}",
            set(gates.ROW_COUNT_PARAMETERS), settings, staged,
        )  # fmt: skip

    # gold.user_daily counts its rows per event_date and is recomputed per day: the
    # three staged event days scale yesterday's 30 rows.
    assert GOLD_USER_DAILY.row_count_day_column == "event_date"
    assert GOLD_USER_DAILY.recomputed_per_day
    declared = band(GOLD_USER_DAILY)
    assert declared["previous_day_rows"] == 30
    assert declared["rows_fail_max"] == 900
    # The same table, declared per landing day: one day of the run.
    assert band(replace(GOLD_USER_DAILY, recomputed_per_day=False))["rows_fail_max"] == 300
    # No day column declared: no baseline, no bounds.
    open_band = band(replace(GOLD_USER_DAILY, row_count_day_column=None))
    assert open_band["previous_day_rows"] == 0
    assert (open_band["rows_fail_min"], open_band["rows_fail_max"]) == (0, None)


def test_quarantine_limits_count_the_runs_staged_rows_of_both_tables(
    spark: SparkSession, lakehouse: str
) -> None:
    run_key = f"{DAY}_{DAY}"
    stage_outputs(
        spark,
        lakehouse,
        run_key,
        {
            SILVER_PURCHASES: frame(spark, SILVER_PURCHASES, [silver_row(n) for n in range(18)]),
            SILVER_QUARANTINE: frame(
                spark, SILVER_QUARANTINE, [quarantine_row(n) for n in range(2)]
            ),
        },
    )
    needed = set(gates.QUARANTINE_PARAMETERS)
    settings = gates.GateSettings()
    # silver.quarantine's catalog entry names silver.purchases as the kept records.
    assert SILVER_QUARANTINE.quarantine_of is SILVER_PURCHASES
    limits = gates.build_parameters(
        spark, lakehouse, SILVER_QUARANTINE, params(), run_key, needed, settings
    )
    # 20 staged records: 5% of them warn, 25% fail.
    assert limits == {"quarantine_warn_max_rows": 1, "quarantine_fail_max_rows": 5}
    # A table that declares no kept-records table has no limits to derive.
    with pytest.raises(ValueError, match="quarantine_fail_max_rows"):
        gates.build_parameters(
            spark, lakehouse, replace(SILVER_QUARANTINE, quarantine_of=None), params(),
            run_key, needed, settings,
        )  # fmt: skip


def test_index_lines_accumulate_and_the_reports_folder_keeps_no_drafts(
    spark: SparkSession, lakehouse: str
) -> None:
    table, rows = correct_frame(spark, "gold_user_daily")
    for _ in range(3):
        gates.validate_table(spark, lakehouse, table, rows, params(), f"{DAY}_{DAY}")

    entries = read_index(lakehouse)
    assert [e["success"] for e in entries] == [True, True, True]
    assert len({e["report"] for e in entries}) == 3
    leftovers = [p for p in Path(reports_path(lakehouse)).rglob("*") if p.name.startswith(".")]
    assert leftovers == []
