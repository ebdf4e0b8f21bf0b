"""bronze.purchases keeps every landed line as landed, one landing date at a time."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from spark_jobs.catalog import (
    BRONZE_LANDING_LOG,
    BRONZE_PURCHASES,
    BRONZE_PURCHASES_SCHEMA,
)
from spark_jobs.cli import EXIT_BAD_INPUT, run_cli
from spark_jobs.jobs import ingest_bronze
from tests.factories import (
    ingest,
    same_columns,
    sorted_rows,
    table_rows,
    write_landing,
)

D1 = dt.date(2026, 3, 2)
D2 = dt.date(2026, 3, 3)


def test_every_line_lands_in_bronze_as_landed(spark, lakehouse):
    sound = '{"event_id":"e1","quantity":2,"unit_price":"19.99","category":null}'
    numeric = '{"event_id":"e2","quantity":3,"unit_price":4.5}'
    broken = '{"event_id":"e3"'
    trailing = '{"event_id":"e4"} and more'
    plain = write_landing(lakehouse, D1, "a.jsonl", [sound, broken, ""])
    packed = write_landing(lakehouse, D1, "b.jsonl.gz", [numeric, trailing])
    write_landing(lakehouse, D1, "c.jsonl", [])
    write_landing(lakehouse, D1, "_upload_in_progress.jsonl", [sound])

    ingest(spark, lakehouse, D1)

    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(lakehouse))
    assert same_columns(bronze.schema, BRONZE_PURCHASES_SCHEMA)
    end_of_day = dt.datetime(2026, 3, 3)

    def row(raw, source, malformed, **fields):
        values = [fields.get(f.name) for f in BRONZE_PURCHASES_SCHEMA.fields[:10]]
        return (*values, raw, malformed, source, end_of_day, D1)

    expected = [
        row(sound, plain, False, event_id="e1", quantity="2", unit_price="19.99"),
        row(broken, plain, True),
        row("", plain, True),
        row(numeric, packed, False, event_id="e2", quantity="3", unit_price="4.5"),
        row(trailing, packed, True),
    ]
    assert sorted_rows(bronze.collect()) == sorted_rows(expected)


def test_landing_date_without_files_publishes_zero_rows_and_says_so(spark, lakehouse, caplog):
    write_landing(lakehouse, D1, "a.jsonl", ['{"event_id":"e1"}'])
    with caplog.at_level(logging.INFO, logger="spark_jobs.jobs.ingest_bronze"):
        ingest(spark, lakehouse, D1, D2)

    assert f"landing date {D2}: no files" in caplog.text
    assert table_rows(spark, lakehouse, BRONZE_LANDING_LOG) == [
        (D1, 1, dt.datetime(2026, 3, 3)),
        (D2, 0, dt.datetime(2026, 3, 4)),
    ]
    bronze = spark.read.format("delta").load(BRONZE_PURCHASES.path(lakehouse))
    assert [r["_landing_date"] for r in bronze.collect()] == [D1]


def test_rerun_replaces_exactly_its_landing_date(spark, lakehouse):
    write_landing(lakehouse, D1, "a.jsonl", ['{"event_id":"e1"}', '{"event_id":"e2"}'])
    write_landing(lakehouse, D2, "a.jsonl", ['{"event_id":"e3"}'])
    ingest(spark, lakehouse, D1, D2)
    first = table_rows(spark, lakehouse, BRONZE_PURCHASES)

    ingest(spark, lakehouse, D1)
    assert table_rows(spark, lakehouse, BRONZE_PURCHASES) == first

    write_landing(lakehouse, D1, "a.jsonl", ['{"event_id":"e9"}'])
    ingest(spark, lakehouse, D1)
    by_date = {(r[0], r[-1]) for r in table_rows(spark, lakehouse, BRONZE_PURCHASES)}
    assert by_date == {("e9", D1), ("e3", D2)}


def test_missing_landing_folder_exits_2_with_one_line(spark, lakehouse, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(ingest_bronze.main, ["--root", lakehouse, "--start", str(D1)])
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no landing folder" in err


def test_full_run_through_the_gate_publishes_bronze(spark, lakehouse):
    line = (
        '{"event_id":"e1","order_id":"o1","user_id":"u1","event_type":"purchase",'
        '"event_time":"2026-03-02T10:00:00Z","sku":"S1","category":null,"quantity":1,'
        '"unit_price":"1.00","currency":"USD"}'
    )
    write_landing(lakehouse, D1, "a.jsonl", [line])
    assert ingest_bronze.main(["--root", lakehouse, "--start", str(D1)]) == 0
    assert [r[0] for r in table_rows(spark, lakehouse, BRONZE_PURCHASES)] == ["e1"]
