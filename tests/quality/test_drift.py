"""Feature drift: the features gate compares the run's days with the trailing 28 days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import SparkSession

from spark_jobs.catalog import GOLD_USER_FEATURES
from spark_jobs.quality import drift, gates
from tests.factories import feature_frame, midnight_after, snapshot_row

DAY = dt.date(2026, 3, 29)
USERS = 120
PSI = "expect_column_psi_to_be_at_most"


def snapshot(
    user: int, as_of: dt.date, spend_factor: int = 1, known: dt.date | None = None
) -> dict:
    """A sound snapshot whose 30-day features spread over the users (known after ``known``)."""
    row = snapshot_row(f"u{user}", as_of, value=4, available_at=midnight_after(known or as_of))
    orders = 1 + user % 4
    net = Decimal(10 + (user % 10) * 5) * spend_factor
    row.update(
        orders_7d=1,
        items_7d=1,
        active_days_7d=1,
        orders_30d=orders,
        items_30d=2 * orders,
        net_usd_30d=net,
        aov_usd_30d=float(net) / orders,
        active_days_30d=orders,
        orders_90d=4,
        items_90d=8,
        active_days_90d=4,
        days_since_last_purchase=user % 7,
        first_purchase_date=as_of - dt.timedelta(days=60),
        last_purchase_date=as_of - dt.timedelta(days=user % 7),
    )
    return row


@pytest.fixture
def with_history(spark: SparkSession, lakehouse: str) -> str:
    """gold.user_features published for the 28 days before DAY (and one older day)."""
    days = [DAY - dt.timedelta(days=back) for back in range(1, 30)]
    rows = [snapshot(user, day) for day in days for user in range(USERS)]
    # Day 29 before DAY is outside the window: wildly different spend must not count.
    rows += [snapshot(user, DAY - dt.timedelta(days=29), 50) for user in range(USERS)]
    feature_frame(spark, rows).write.format("delta").save(GOLD_USER_FEATURES.path(lakehouse))
    return lakehouse


def gate(spark: SparkSession, root: str, rows: list[dict]) -> gates.GateResult:
    params = {"start": str(DAY), "end": str(DAY)}
    return gates.validate_table(
        spark, root, GOLD_USER_FEATURES, feature_frame(spark, rows), params, f"{DAY}_{DAY}"
    )


def drift_warnings(result: gates.GateResult) -> list[str]:
    return sorted(w["columns"] for w in result.warnings if w["expectation"] == PSI)


def test_the_index_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    assert drift.psi([0.5, 0.5], [50, 50]) == 0
    assert 0 < drift.psi([0.5, 0.5], [60, 40]) < 0.1  # type: ignore[operator]
    assert drift.psi([0.5, 0.5], [95, 5]) > 0.25  # type: ignore[operator]
    # An empty bin on one side is floored, not infinite.
    assert drift.psi([0.5, 0.5], [100, 0]) < 10  # type: ignore[operator]
    assert drift.psi([0.5, 0.5], [0, 0]) is None
    assert drift.psi([0.5, 0.5], [1, 1, 1]) is None


def test_the_reference_cuts_the_trailing_days_at_their_deciles(spark, with_history) -> None:
    published = spark.read.format("delta").load(GOLD_USER_FEATURES.path(with_history))
    values = drift.reference(published, ["net_usd_30d", "orders_30d"], "as_of_date", DAY, 28, 100)
    edges = values["drift_edges__net_usd_30d"]
    # Ten spend levels, 10 to 55: the decile edges are levels, the day outside the
    # window (500 and more) is not among them.
    assert edges == sorted(set(edges)) and max(edges) <= 55
    shares = values["drift_shares__net_usd_30d"]
    assert len(shares) == len(edges) + 1
    assert sum(shares) == pytest.approx(1.0, abs=1e-4)
    # Four order counts: equal deciles collapse, so fewer bins.
    assert len(values["drift_edges__orders_30d"]) <= 4

    too_few = drift.reference(published, ["net_usd_30d"], "as_of_date", DAY, 28, 10**6)
    assert too_few == {"drift_edges__net_usd_30d": [], "drift_shares__net_usd_30d": []}


def test_a_day_like_the_trailing_weeks_passes_without_drift_warnings(spark, with_history) -> None:
    result = gate(spark, with_history, [snapshot(user, DAY) for user in range(USERS)])
    assert result.passed, result.summary()
    assert drift_warnings(result) == []
    psi = result.observations["feature_psi"]
    assert set(psi) == set(GOLD_USER_FEATURES.drift_columns)
    assert max(psi.values()) < 0.05
    # As many rows as the day before: the middle of the row-count band.
    assert result.observations["row_band_position"] == 0.0


def test_a_shifted_spend_warns_on_the_spend_features_and_still_publishes(
    spark, with_history
) -> None:
    rows = [snapshot(user, DAY, spend_factor=5) for user in range(USERS)]
    # A late correction of an earlier day stages beside the run's day: not the run's
    # distribution, so its values count in no bin.
    rows += [snapshot(user, DAY - dt.timedelta(days=3), 1000, known=DAY) for user in range(10)]
    result = gate(spark, with_history, rows)
    assert result.passed, result.summary()
    assert drift_warnings(result) == ["aov_usd_30d", "net_usd_30d"]
    psi = result.observations["feature_psi"]
    assert psi["net_usd_30d"] > 0.25
    assert psi["orders_30d"] < 0.05
    assert "population stability" in result.summary()


def test_without_trailing_snapshots_the_drift_checks_pass_and_observe_nothing(
    spark, lakehouse
) -> None:
    result = gate(spark, lakehouse, [snapshot(user, DAY, 5) for user in range(10)])
    assert result.passed, result.summary()
    assert drift_warnings(result) == []
    assert "feature_psi" not in result.observations
    assert "row_band_position" not in result.observations  # no baseline either
