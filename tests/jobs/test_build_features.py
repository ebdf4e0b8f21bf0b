"""gold.user_features: rolling windows, lifetime and RFM per (user, as_of_date), with every
correction kept in gold.user_features_history; backfills equal daily runs row for row."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from spark_jobs.catalog import (
    GOLD_USER_DAILY,
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_FEATURE_STATE,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    GOLD_USER_FEATURES_SCHEMA,
)
from spark_jobs.cli import run_cli
from spark_jobs.jobs import build_features, build_gold
from tests.factories import rows_by_repr, run_job, silver_row, write_silver

D = dt.date.fromisoformat
GOLD_TABLES = (
    GOLD_USER_DAILY,
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    GOLD_USER_FEATURE_STATE,
)
AS_OF = D("2026-06-30")


def at(days_back: int, hour: int = 12) -> str:
    """A UTC event time ``days_back`` days before AS_OF."""
    return f"{AS_OF - dt.timedelta(days=days_back)}T{hour:02d}:00:00"


def features(spark, root: str, table=GOLD_USER_FEATURES) -> dict[tuple, dict]:
    """Published feature rows keyed by (user_id, as_of_date[, available_at])."""
    rows = spark.read.format("delta").load(table.path(root)).collect()
    if table is GOLD_USER_FEATURES_HISTORY:
        return {(r.user_id, r.as_of_date, r.available_at): r.asDict() for r in rows}
    return {(r.user_id, r.as_of_date): r.asDict() for r in rows}


def build_day(root: str, start: str, end: str | None = None) -> None:
    run_job(build_gold, root, start, end)
    run_job(build_features, root, start, end)


@pytest.fixture(scope="module")
def snapshot(spark, tmp_path_factory) -> dict[str, dict]:
    """Feature rows at AS_OF for hand-made histories that all land on AS_OF."""
    root = str(tmp_path_factory.mktemp("features") / "lakehouse")
    landing = str(AS_OF)
    edges = [silver_row("edges", at(back), order_id=f"e{back}", landing=landing)
             for back in (0, 6, 7, 29, 30, 89, 90)]  # fmt: skip
    refunds = [
        silver_row("refunds", at(40), order_id="r0", unit_price="5.00", category="toys",
                   landing=landing),
        silver_row("refunds", at(3), order_id="ra", quantity=2, landing=landing),
        silver_row("refunds", at(3), order_id="rb", unit_price="30.00", category="games",
                   landing=landing),
        silver_row("refunds", at(0), "refund", order_id="ra", landing=landing),
    ]  # fmt: skip
    ties = [
        silver_row("ties", at(1), order_id="t1", quantity=2, category="books", landing=landing),
        silver_row("ties", at(2), order_id="t2", quantity=2, category="art", landing=landing),
        silver_row("ties", at(2), order_id="t2", quantity=5, category=None, landing=landing),
        silver_row("no_category", at(1), order_id="n1", category=None, landing=landing),
        silver_row("newcomer", at(0), order_id="x1", unit_price="12.50", landing=landing),
        silver_row("refund_only", at(5), "refund", order_id="z1", landing=landing),
    ]  # fmt: skip
    write_silver(spark, root, edges + refunds + ties)
    build_day(root, landing)
    return {user: row for (user, as_of), row in features(spark, root).items() if as_of == AS_OF}


def test_windows_cover_the_last_w_days_and_an_event_exactly_w_days_back_is_out(snapshot):
    row = snapshot["edges"]
    assert [row[f"orders_{w}d"] for w in (7, 30, 90)] == [2, 4, 6]
    assert [row[f"active_days_{w}d"] for w in (7, 30, 90)] == [2, 4, 6]
    assert [row[f"net_usd_{w}d"] for w in (7, 30, 90)] == [Decimal(20), Decimal(40), Decimal(60)]
    assert row["lifetime_orders"] == 7 and row["lifetime_net_usd"] == Decimal(70)
    assert (row["first_purchase_date"], row["last_purchase_date"]) == (
        AS_OF - dt.timedelta(90),
        AS_OF,
    )
    assert (row["frequency"], row["recency"], row["T"], row["monetary_value"]) == (6, 90, 90, 10.0)
    assert row["days_since_last_purchase"] == 0 and row["aov_usd_7d"] == 10.0


def test_refunds_reduce_net_and_count_their_day_as_active(snapshot):
    row = snapshot["refunds"]
    assert (row["orders_7d"], row["items_7d"], row["active_days_7d"]) == (2, 3, 2)
    assert (row["net_usd_7d"], row["refunds_usd_7d"]) == (Decimal(40), Decimal(10))
    assert row["aov_usd_7d"] == 25.0  # gross per order
    assert (row["orders_90d"], row["net_usd_90d"], row["active_days_90d"]) == (3, Decimal(45), 3)
    assert row["aov_usd_90d"] == pytest.approx(55 / 3)
    assert (row["lifetime_orders"], row["lifetime_net_usd"]) == (3, Decimal(45))
    assert (row["frequency"], row["recency"], row["T"]) == (1, 37, 40)
    assert row["monetary_value"] == 50.0  # the repeat purchase day's net; the refund day is not one
    assert row["days_since_last_purchase"] == 3
    assert row["top_category_90d"] == "books"


def test_first_purchase_day_has_frequency_and_monetary_value_zero(snapshot):
    row = snapshot["newcomer"]
    assert (row["frequency"], row["recency"], row["T"], row["monetary_value"]) == (0, 0, 0, 0.0)
    assert row["lifetime_net_usd"] == Decimal("12.50")
    assert row["feature_ts"] == dt.datetime(2026, 7, 1)
    assert row["available_at"] == dt.datetime(2026, 7, 1)


def test_top_category_ties_go_to_the_first_name_and_null_categories_never_win(snapshot):
    assert snapshot["ties"]["top_category_90d"] == "art"
    assert snapshot["no_category"]["top_category_90d"] is None


def test_users_with_only_refunds_have_no_feature_row(snapshot):
    assert "refund_only" not in snapshot


def _history_with_late_rows() -> list[dict]:
    return [
        silver_row("u1", "2026-03-01T09:00:00", order_id="a1"),
        silver_row("u2", "2026-03-01T10:00:00", order_id="b1", category="games"),
        silver_row("u2", "2026-03-02T23:30:00", order_id="b2", offset_minutes=-300),
        silver_row("u3", "2026-03-03T00:15:00", order_id="c1", offset_minutes=120),
        # landed on 03-04, happened on 03-02: rewrites u1's snapshots of 03-02 and 03-03
        silver_row("u1", "2026-03-02T18:00:00", order_id="a2", unit_price="30.00",
                   landing="2026-03-04"),
        silver_row("u2", "2026-03-03T08:00:00", "refund", order_id="b2", landing="2026-03-04"),
        # a user whose first purchase is late
        silver_row("u4", "2026-03-01T08:00:00", order_id="d1", landing="2026-03-03"),
        # landed after the range built in these tests
        silver_row("u1", "2026-03-01T12:00:00", order_id="a0", landing="2026-03-06"),
    ]  # fmt: skip


def _available(day: str) -> dt.datetime:
    return dt.datetime.combine(D(day), dt.time())


DAYS = ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05")


@pytest.fixture(scope="module")
def daily_built(spark, tmp_path_factory) -> str:
    """A lakehouse whose gold and features were built by daily runs of DAYS, in order."""
    root = str(tmp_path_factory.mktemp("features_daily") / "lakehouse")
    write_silver(spark, root, _history_with_late_rows())
    for day in DAYS:
        build_day(root, day)
    return root


def test_late_rows_add_versions_of_exactly_the_snapshots_whose_windows_contain_them(
    spark, daily_built
):
    history = features(spark, daily_built, GOLD_USER_FEATURES_HISTORY)
    versions = sorted((k[0], str(k[1]), str(k[2].date())) for k in history)
    assert versions == sorted(
        [(user, f"2026-03-0{d}", f"2026-03-0{d + 1}") for user in ("u1", "u2") for d in range(1, 6)]
        + [("u3", f"2026-03-0{d}", f"2026-03-0{d + 1}") for d in (3, 4, 5)]
        + [("u4", "2026-03-01", "2026-03-04"), ("u4", "2026-03-02", "2026-03-04")]
        + [("u4", f"2026-03-0{d}", f"2026-03-0{d + 1}") for d in (3, 4, 5)]
        + [("u1", "2026-03-02", "2026-03-05"), ("u1", "2026-03-03", "2026-03-05")]
        + [("u2", "2026-03-03", "2026-03-05")]
    )
    superseded = history[("u1", D("2026-03-02"), _available("2026-03-03"))]
    corrected = history[("u1", D("2026-03-02"), _available("2026-03-05"))]
    assert (superseded["orders_7d"], superseded["net_usd_7d"]) == (1, Decimal(10))
    assert (corrected["orders_7d"], corrected["net_usd_7d"]) == (2, Decimal(40))
    assert corrected["feature_ts"] == superseded["feature_ts"] == _available("2026-03-03")
    latest = features(spark, daily_built)
    assert latest[("u1", D("2026-03-02"))] == corrected
    assert latest[("u1", D("2026-03-01"))]["available_at"] == _available("2026-03-02")
    assert latest[("u2", D("2026-03-03"))]["refunds_usd_7d"] == Decimal(10)
    assert latest[("u4", D("2026-03-01"))]["lifetime_orders"] == 1
    published = spark.read.format("delta").load(GOLD_USER_FEATURES.path(daily_built)).schema
    assert [(f.name, f.dataType) for f in published.fields] == [
        (f.name, f.dataType) for f in GOLD_USER_FEATURES_SCHEMA.fields
    ]


def test_backfill_gives_row_for_row_the_tables_of_daily_runs(spark, lakehouse, daily_built, caplog):
    write_silver(spark, lakehouse, _history_with_late_rows())
    with caplog.at_level("INFO", logger="spark_jobs.transforms.feature_versions"):
        build_day(lakehouse, DAYS[0], DAYS[-1])
    # A progress line per landing date of the backfill, in order.
    progress = [re.search(r"day \d+ of \d+", r.getMessage()) for r in caplog.records]
    assert [found.group() for found in progress if found] == [
        f"day {n} of {len(DAYS)}" for n in range(1, len(DAYS) + 1)
    ]
    for table in GOLD_TABLES:
        assert rows_by_repr(spark, lakehouse, table) == rows_by_repr(spark, daily_built, table), (
            table.name
        )


def test_rerunning_any_day_or_range_leaves_the_tables_identical(spark, daily_built):
    before = {t.name: rows_by_repr(spark, daily_built, t) for t in GOLD_TABLES}
    run_job(build_features, daily_built, "2026-03-02")
    run_job(build_features, daily_built, "2026-03-03", "2026-03-04", step="build")
    run_job(build_features, daily_built, "2026-03-03", "2026-03-04", step="publish")
    build_day(daily_built, "2026-03-05")
    assert {t.name: rows_by_repr(spark, daily_built, t) for t in GOLD_TABLES} == before


def test_features_before_gold_is_one_line_and_exit_2(spark, lakehouse, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(build_features.main, ["--root", lakehouse, "--start", "2026-03-01"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "gold.user_daily_by_landing not found" in err and "build_gold" in err
    assert len(err.splitlines()) == 1


def test_publish_without_build_is_one_line_and_exit_2(spark, lakehouse, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            build_features.main, ["--root", lakehouse, "--start", "2026-03-01", "--step", "publish"]
        )
    assert exit_info.value.code == 2
    assert "--step build" in capsys.readouterr().err
