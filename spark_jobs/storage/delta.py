"""The one place that asks whether a Delta table is at a path, and reads it.

Jobs read their inputs and published outputs through these four calls, so "is there a
table here yet" means the same thing everywhere: a folder with a Delta log.
"""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession


def is_delta(spark: SparkSession, path: str) -> bool:
    """True when ``path`` holds a Delta table (a ``_delta_log`` with a commit)."""
    return bool(DeltaTable.isDeltaTable(spark, path))


def read_if_exists(spark: SparkSession, path: str) -> DataFrame | None:
    """The latest snapshot of the Delta table at ``path``; None when there is none."""
    if not is_delta(spark, path):
        return None
    return spark.read.format("delta").load(path)


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The newest version of the Delta table at ``path``; None when there is none."""
    if not is_delta(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    """The Delta table at ``path`` as it was at ``version`` (time travel)."""
    return spark.read.format("delta").option("versionAsOf", version).load(path)
