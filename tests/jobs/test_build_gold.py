"""gold.user_daily: per (user, event_date) totals, rebuilt only for the days landings touch.

Silver rows are written by hand (``write_silver``), with silver.changes derived from
them the way build_silver records it; the helpers here are shared by the gold tests.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from spark_jobs.catalog import (
    GOLD_USER_DAILY,
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_DAILY_SCHEMA,
)
from spark_jobs.cli import run_cli
from spark_jobs.jobs import build_gold
from tests.factories import rows_by_repr, run_job, silver_row, write_silver

D = dt.date.fromisoformat


def daily_row(user, day, orders, items, gross, refunds, refund_count, categories, first, last):
    """An expected gold.user_daily row."""
    gross, refunds = Decimal(gross), Decimal(refunds)
    return (
        user,
        D(day),
        orders,
        items,
        gross,
        refunds,
        gross - refunds,
        refund_count,
        categories,
        dt.datetime.fromisoformat(first),
        dt.datetime.fromisoformat(last),
    )


def test_user_daily_counts_orders_items_money_and_categories(spark, lakehouse):
    write_silver(
        spark,
        lakehouse,
        [
            silver_row("u1", "2026-03-01T08:00:00", order_id="o1", quantity=2, unit_price="5.00"),
            silver_row("u1", "2026-03-01T08:00:00", order_id="o1", category="games"),
            silver_row("u1", "2026-03-01T21:30:00", order_id="o2", category=None,
                       offset_minutes=-300),
            silver_row("u1", "2026-03-01T22:00:00", "refund", order_id="o0", unit_price="4.00"),
            silver_row("u2", "2026-03-01T23:59:59", order_id="o3", quantity=3, offset_minutes=60),
            # only a refund that day
            silver_row("u3", "2026-03-01T10:00:00", "refund", quantity=2, unit_price="7.50"),
        ],
    )  # fmt: skip
    run_job(build_gold, lakehouse, "2026-03-01", step="build")
    assert not Path(GOLD_USER_DAILY.path(lakehouse)).exists()  # staged, not published
    run_job(build_gold, lakehouse, "2026-03-01", step="publish")
    assert rows_by_repr(spark, lakehouse, GOLD_USER_DAILY) == sorted(
        [
            daily_row("u1", "2026-03-01", 2, 4, "30.00", "4.00", 1, 2,
                      "2026-03-01T08:00:00", "2026-03-01T22:00:00"),
            daily_row("u2", "2026-03-01", 1, 3, "30.00", "0", 0, 1,
                      "2026-03-01T23:59:59", "2026-03-01T23:59:59"),
            daily_row("u3", "2026-03-01", 0, 0, "0", "15.00", 1, 0,
                      "2026-03-01T10:00:00", "2026-03-01T10:00:00"),
        ],
        key=repr,
    )  # fmt: skip
    published = spark.read.format("delta").load(GOLD_USER_DAILY.path(lakehouse)).schema
    assert [(f.name, f.dataType) for f in published.fields] == [
        (f.name, f.dataType) for f in GOLD_USER_DAILY_SCHEMA.fields
    ]


def _last_commit_partitions(root: str) -> set[str]:
    log_dir = Path(GOLD_USER_DAILY.path(root)) / "_delta_log"
    last = sorted(log_dir.glob("*.json"))[-1]
    actions = [json.loads(line) for line in last.read_text().splitlines()]
    return {
        a[kind]["partitionValues"]["event_date"]
        for a in actions
        for kind in ("add", "remove")
        if kind in a
    }


def late_history() -> list[dict]:
    """Three landing dates with late rows, and one more landing after them."""
    return [
        silver_row("u1", "2026-03-01T09:00:00", order_id="o1"),
        silver_row("u2", "2026-03-01T10:00:00", order_id="o2", category="games"),
        silver_row("u1", "2026-03-02T09:00:00", order_id="o3"),
        # one order whose lines landed on two dates counts once
        silver_row("u1", "2026-03-01T09:00:00", order_id="o1", category="toys",
                   landing="2026-03-02"),
        silver_row("u2", "2026-03-01T11:00:00", "refund", order_id="o2", landing="2026-03-03"),
        silver_row("u3", "2026-03-03T01:00:00", order_id="o5", offset_minutes=-480),
        # a landing after 03-03: a backfill of 03-01..03-03 must not see it
        silver_row("u1", "2026-03-01T12:00:00", order_id="o6", landing="2026-03-04"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def daily_built(spark, tmp_path_factory) -> str:
    """A lakehouse whose gold was built by daily runs of 03-01, 03-02, 03-03."""
    root = str(tmp_path_factory.mktemp("gold_daily") / "lakehouse")
    write_silver(spark, root, late_history())
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        run_job(build_gold, root, day)
    return root


def test_late_rows_land_in_their_event_day_and_only_touched_days_are_rebuilt(spark, daily_built):
    assert _last_commit_partitions(daily_built) == {"2026-03-01", "2026-03-03"}
    assert rows_by_repr(spark, daily_built, GOLD_USER_DAILY) == sorted(
        [
            daily_row("u1", "2026-03-01", 1, 2, "20.00", "0", 0, 2,
                      "2026-03-01T09:00:00", "2026-03-01T09:00:00"),
            daily_row("u2", "2026-03-01", 1, 1, "10.00", "10.00", 1, 1,
                      "2026-03-01T10:00:00", "2026-03-01T11:00:00"),
            daily_row("u1", "2026-03-02", 1, 1, "10.00", "0", 0, 1,
                      "2026-03-02T09:00:00", "2026-03-02T09:00:00"),
            daily_row("u3", "2026-03-03", 1, 1, "10.00", "0", 0, 1,
                      "2026-03-03T01:00:00", "2026-03-03T01:00:00"),
        ],
        key=repr,
    )  # fmt: skip


def test_backfill_gives_the_tables_of_daily_runs(spark, lakehouse, daily_built):
    write_silver(spark, lakehouse, late_history())
    run_job(build_gold, lakehouse, "2026-03-01", "2026-03-03")
    for table in (GOLD_USER_DAILY, GOLD_USER_DAILY_BY_LANDING):
        assert rows_by_repr(spark, lakehouse, table) == rows_by_repr(spark, daily_built, table)


def test_rerunning_an_old_day_keeps_later_corrections(spark, daily_built):
    run_job(build_gold, daily_built, "2026-03-04")
    tables = (GOLD_USER_DAILY, GOLD_USER_DAILY_BY_LANDING)
    before = {t.name: rows_by_repr(spark, daily_built, t) for t in tables}
    assert ("u1", D("2026-03-01"), 2, 3) == next(
        r[:4] for r in before[GOLD_USER_DAILY.name] if r[0] == "u1"
    )  # o6, landed on 03-04, is in
    run_job(build_gold, daily_built, "2026-03-02")
    run_job(build_gold, daily_built, "2026-03-01", "2026-03-02", step="build")
    run_job(build_gold, daily_built, "2026-03-01", "2026-03-02", step="publish")
    assert {t.name: rows_by_repr(spark, daily_built, t) for t in tables} == before


def test_missing_silver_is_one_line_and_exit_2(spark, lakehouse, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_gold.main, ["--root", lakehouse, "--start", "2026-03-01"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "silver.changes not found" in err and "build_silver" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start", "2026-03-02", "--end", "2026-03-01"], "before --start"),
        (["--start", "2026-03-01", "--step", "everything"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_gold.main, ["--root", str(tmp_path), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_date_from_the_command_line_exits_2_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "spark_jobs.jobs.build_gold", "--root", str(tmp_path),
         "--start", "2026-02-30"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid date" in done.stderr and "Traceback" not in done.stderr
