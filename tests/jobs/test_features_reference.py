"""Feature values equal a plain pandas computation on the same silver rows.

The reference recomputes every version from scratch: for landing date L, the rows landed
on or before L, per user, up to each as_of_date. It knows nothing of slices, state or
incremental windows, so it checks them.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pandas as pd
import pytest

from spark_jobs.catalog import GOLD_USER_FEATURES, GOLD_USER_FEATURES_HISTORY
from spark_jobs.jobs import build_features, build_gold
from tests.factories import run_job, silver_row, write_silver

FIRST_LANDING = dt.date(2026, 3, 1)
LANDINGS = [FIRST_LANDING + dt.timedelta(days=i) for i in range(12)]
CATEGORIES = ["art", "books", "games", "toys", None]
OFFSETS = [-480, -300, 0, 60, 330, 540]  # several time zones of the order system


def generated_silver(seed: int = 20260301) -> list[dict]:
    """Purchases, refunds of earlier orders and late rows for 16 users over 12 landings."""
    rng = random.Random(seed)
    rows: list[dict] = []
    orders_by_user: dict[str, list[dict]] = {}
    for landing in LANDINGS:
        for number in range(16):
            user = f"user{number:02d}"
            if rng.random() > 0.45:
                continue
            lateness = rng.choice([0, 0, 0, 0, 1, 2, 6])
            event_day = landing - dt.timedelta(days=lateness)
            when = dt.datetime.combine(event_day, dt.time(rng.randrange(24), rng.randrange(60)))
            order_id = f"{user}-{landing}-{rng.randrange(10**6)}"
            offset = rng.choice(OFFSETS)
            lines = []
            for line in range(rng.randint(1, 3)):
                lines.append(
                    silver_row(
                        user,
                        when.isoformat(),
                        order_id=order_id,
                        quantity=rng.randint(1, 3),
                        unit_price=f"{rng.randint(100, 9000) / 100:.2f}",
                        category=rng.choice(CATEGORIES),
                        landing=str(landing),
                        offset_minutes=offset,
                        event_id=f"{order_id}-{line}",
                    )
                )
            rows += lines
            orders_by_user.setdefault(user, []).extend(lines)
            earlier = [r for r in orders_by_user[user] if r["event_time"] < when]
            if earlier and rng.random() < 0.3:
                refunded = rng.choice(earlier)
                refund_time = when + dt.timedelta(hours=rng.randint(0, 30))
                rows.append(
                    silver_row(
                        user,
                        min(refund_time, dt.datetime.combine(landing, dt.time(23, 59))).isoformat(),
                        "refund",
                        order_id=refunded["order_id"],
                        unit_price=str(refunded["unit_price"]),
                        category=refunded["category"],
                        landing=str(landing),
                        offset_minutes=offset,
                        event_id=f"refund-{order_id}",
                    )
                )
    # a refund before the user's first purchase still counts in lifetime net
    rows.append(silver_row("ghost", "2026-03-02T05:00:00", "refund", order_id="g0"))
    rows.append(silver_row("ghost", "2026-03-05T05:00:00", order_id="g1"))
    return rows


def reference_row(rows: pd.DataFrame, as_of: dt.date) -> dict | None:
    """Feature values of one user at ``as_of`` from their rows up to that day."""
    purchases = rows[rows.event_type == "purchase"]
    if purchases.empty:
        return None
    days = sorted(set(rows.event_date))
    daily = {}
    for day in days:
        on_day = rows[rows.event_date == day]
        bought = on_day[on_day.event_type == "purchase"]
        gross = sum(bought.amount_usd, Decimal(0))
        refunds = -sum(on_day[on_day.event_type == "refund"].amount_usd, Decimal(0))
        daily[day] = {
            "orders": bought.order_id.nunique(),
            "items": int(bought.quantity.sum()),
            "gross": gross,
            "refunds": refunds,
            "net": gross - refunds,
        }
    values: dict = {}
    for w in (7, 30, 90):
        inside = [daily[d] for d in days if d > as_of - dt.timedelta(days=w)]
        orders = sum(d["orders"] for d in inside)
        gross = sum((d["gross"] for d in inside), Decimal(0))
        values[f"orders_{w}d"] = orders
        values[f"items_{w}d"] = sum(d["items"] for d in inside)
        values[f"net_usd_{w}d"] = sum((d["net"] for d in inside), Decimal(0))
        values[f"refunds_usd_{w}d"] = sum((d["refunds"] for d in inside), Decimal(0))
        values[f"active_days_{w}d"] = len(inside)
        values[f"aov_usd_{w}d"] = float(gross) / orders if orders else None
    purchase_days = [d for d in days if daily[d]["orders"] > 0]
    first, last = purchase_days[0], purchase_days[-1]
    frequency = len(purchase_days) - 1
    recent = purchases[purchases.event_date > as_of - dt.timedelta(days=90)].dropna(
        subset=["category"]
    )
    by_category = recent.groupby("category").quantity.sum()
    ranked = sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    repeat_net = sum((daily[d]["net"] for d in purchase_days[1:]), Decimal(0))
    values.update(
        first_purchase_date=first,
        last_purchase_date=last,
        lifetime_orders=sum(d["orders"] for d in daily.values()),
        lifetime_net_usd=sum((d["net"] for d in daily.values()), Decimal(0)),
        days_since_last_purchase=(as_of - last).days,
        top_category_90d=ranked[0][0] if ranked else None,
        frequency=frequency,
        recency=(last - first).days,
        T=(as_of - first).days,
        monetary_value=float(repeat_net) / frequency if frequency else 0.0,
        feature_ts=dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()),
    )
    return values


def reference_versions(silver: pd.DataFrame) -> dict[tuple, dict]:
    """Every (user, as_of_date, available_at) version the daily runs of LANDINGS publish."""
    versions = {}
    for landing in LANDINGS:
        known = silver[silver["_landing_date"] <= landing]
        late = silver[(silver["_landing_date"] == landing) & (silver.event_date < landing)]
        wanted = {(user, landing) for user in known.user_id.unique()}
        for user, first_late in late.groupby("user_id").event_date.min().items():
            day = first_late
            while day < landing:
                wanted.add((user, day))
                day += dt.timedelta(days=1)
        available_at = dt.datetime.combine(landing + dt.timedelta(days=1), dt.time())
        for user, as_of in wanted:
            mine = known[(known.user_id == user) & (known.event_date <= as_of)]
            row = reference_row(mine, as_of)
            if row is not None:
                versions[(user, as_of, available_at)] = {**row, "available_at": available_at}
    return versions


def _assert_same(actual: dict[tuple, dict], expected: dict[tuple, dict]) -> None:
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-12), (key, column)
            else:
                assert got[column] == value, (key, column)


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """The generated silver rows, and gold built over all landings in one backfill."""
    root = str(tmp_path_factory.mktemp("reference") / "lakehouse")
    rows = generated_silver()
    write_silver(spark, root, rows)
    start, end = str(LANDINGS[0]), str(LANDINGS[-1])
    run_job(build_gold, root, start, end)
    run_job(build_features, root, start, end)
    return root, pd.DataFrame(rows)


def test_generated_set_has_late_rows_refunds_and_several_time_zones(built):
    _, silver = built
    assert (silver["_landing_date"] > silver.event_date).sum() >= 10
    assert (silver.event_type == "refund").sum() >= 5
    assert silver.event_utc_offset_minutes.nunique() >= 4


def test_every_version_in_history_equals_the_reference(spark, built):
    root, silver = built
    history = spark.read.format("delta").load(GOLD_USER_FEATURES_HISTORY.path(root)).collect()
    actual = {(r.user_id, r.as_of_date, r.available_at): r.asDict() for r in history}
    _assert_same(actual, reference_versions(silver))


def test_latest_features_equal_the_newest_reference_version(spark, built):
    root, silver = built
    newest: dict[tuple, dict] = {}
    for (user, as_of, _available_at), row in sorted(reference_versions(silver).items()):
        newest[(user, as_of)] = row  # sorted: the last one per key is the newest
    latest = spark.read.format("delta").load(GOLD_USER_FEATURES.path(root)).collect()
    _assert_same({(r.user_id, r.as_of_date): r.asDict() for r in latest}, newest)
