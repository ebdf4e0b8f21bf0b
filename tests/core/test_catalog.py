"""The catalog's landing-range and event-date predicates, on real rows and a Delta table."""

from __future__ import annotations

import datetime as dt

from spark_jobs.catalog import event_dates_predicate, landing_filter, landing_predicate
from spark_jobs.cli import DateRange

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def test_an_empty_event_date_list_matches_no_row(spark, lakehouse) -> None:
    assert event_dates_predicate([]) == "false"
    rows = spark.createDataFrame([(D1, 1), (D2, 2), (D3, 3)], "event_date date, n int")
    assert rows.where(event_dates_predicate([])).count() == 0
    assert sorted(r.n for r in rows.where(event_dates_predicate([D3, D1, D3])).collect()) == [1, 3]

    # As a replaceWhere: no event date rebuilt replaces nothing.
    path = f"{lakehouse}/t"
    rows.write.format("delta").partitionBy("event_date").save(path)
    rows.limit(0).write.format("delta").mode("overwrite").option(
        "replaceWhere", event_dates_predicate([])
    ).save(path)
    assert spark.read.format("delta").load(path).count() == 3


def test_the_landing_filter_is_the_landing_predicate(spark) -> None:
    days = DateRange(D2, D3)
    rows = spark.createDataFrame(
        [(D1, 1), (D2, 2), (D3, 3), (None, 4)], "_landing_date date, n int"
    )
    as_text = sorted(r.n for r in rows.where(landing_predicate(days)).collect())
    as_column = sorted(r.n for r in rows.where(landing_filter(days)).collect())
    outside = sorted(r.n for r in rows.where(~landing_filter(days)).collect())
    assert as_text == as_column == [2, 3]
    assert outside == [1]  # a row without a landing date is in neither
