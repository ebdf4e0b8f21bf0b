"""storage.delta_rows reads what Spark reads: through checkpoints, overwrites and S3."""

from __future__ import annotations

import time

import pytest
from pyspark.sql import functions as F

from spark_jobs.storage import delta_rows
from tests.factories import S3_BUCKET, read_s3_with, use_s3_server


def spark_rows(spark, path: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def reader_rows(path: str) -> list[tuple]:
    return sorted((r["n"], r["label"]) for r in delta_rows.read_rows(path))


def append(spark, path: str, first: int, count: int = 2, mode: str = "append") -> None:
    frame = spark.range(first, first + count).select(
        F.col("id").alias("n"), F.concat(F.lit("row-"), F.col("id")).alias("label")
    )
    frame.write.format("delta").mode(mode).save(path)


def test_no_table_reads_as_no_rows(tmp_path) -> None:
    assert delta_rows.read_rows(str(tmp_path / "nothing")) == []


def test_rows_after_a_checkpoint_and_later_commits_match_spark(spark, tmp_path) -> None:
    path = str(tmp_path / "runs")
    for version in range(13):  # Delta checkpoints every 10 commits: v10 is one
        append(spark, path, version * 2)
    assert list((tmp_path / "runs" / "_delta_log").glob("*.checkpoint*.parquet"))
    assert reader_rows(path) == spark_rows(spark, path)
    assert len(reader_rows(path)) == 26


def test_an_overwrite_removes_the_files_it_replaced(spark, tmp_path) -> None:
    path = str(tmp_path / "runs")
    for version in range(11):
        append(spark, path, version * 2)
    append(spark, path, 100, count=3, mode="overwrite")
    append(spark, path, 200, count=1)
    assert reader_rows(path) == spark_rows(spark, path) == [
        (100, "row-100"), (101, "row-101"), (102, "row-102"), (200, "row-200"),
    ]  # fmt: skip


def test_a_partitioned_table_is_refused_not_misread(spark, tmp_path) -> None:
    path = str(tmp_path / "parted")
    spark.range(3).withColumn("p", F.col("id") % 2).write.format("delta").partitionBy("p").save(
        path
    )
    with pytest.raises(delta_rows.UnsupportedTable, match="partitioned"):
        delta_rows.read_rows(path)


def test_rows_on_an_s3_server_match_spark(spark, s3_server, monkeypatch) -> None:
    use_s3_server(monkeypatch, s3_server)
    read_s3_with(spark, s3_server)
    path = f"s3a://{S3_BUCKET}/delta-rows-{time.monotonic_ns()}"
    for version in range(11):
        append(spark, path, version * 2)
    assert reader_rows(path) == spark_rows(spark, path)
