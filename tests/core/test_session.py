"""The session factory starts Spark with cached jars only and writes Delta."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_jobs.session import MissingJarsError, cached_jars


def test_session_uses_cached_jars_and_never_downloads_packages(spark):
    jars = spark.conf.get("spark.jars")
    assert "delta-spark_" in jars and "delta-storage-" in jars
    assert spark.conf.get("spark.jars.packages", "") == ""
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_session_writes_and_time_travels_delta(spark, lakehouse):
    path = f"{lakehouse}/t"
    spark.range(5).write.format("delta").save(path)
    spark.range(7).write.format("delta").mode("overwrite").save(path)
    assert spark.read.format("delta").load(path).count() == 7
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 5


def test_missing_jar_cache_is_a_clear_error(tmp_path: Path):
    with pytest.raises(MissingJarsError, match="make jars"):
        cached_jars(tmp_path)


def test_s3a_jars_are_loaded_only_for_object_store_roots():
    from spark_jobs.config import DEFAULT_JARS_DIR

    local = cached_jars(DEFAULT_JARS_DIR)
    s3 = cached_jars(DEFAULT_JARS_DIR, with_s3a=True)
    assert not any("hadoop-aws-" in j for j in local)
    assert any("hadoop-aws-" in j for j in s3) and any("/bundle-" in j for j in s3)
