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


def test_spark_codegen_off_makes_the_session_interpret_expressions():
    from spark_jobs.config import Settings
    from spark_jobs.session import INTERPRETED_CONF, session_settings

    default = session_settings(Settings.from_env({}))
    off = session_settings(Settings.from_env({"SPARK_CODEGEN": "off"}))
    assert not set(INTERPRETED_CONF) & set(default)
    assert {k: off[k] for k in INTERPRETED_CONF} == INTERPRETED_CONF
    assert Settings.from_env({"SPARK_CODEGEN": "ON"}).codegen is True


def test_the_test_session_runs_interpreted_and_gives_the_same_answers(spark):
    from spark_jobs.session import COMPILED_CONF, INTERPRETED_CONF

    # conftest sets SPARK_CODEGEN=off for the suite; a query's result must not depend on it.
    assert spark.conf.get("spark.sql.codegen.factoryMode") == "NO_CODEGEN"
    frame = spark.range(1000).selectExpr("id % 7 AS k", "id * 2 AS v")
    interpreted = sorted(frame.groupBy("k").sum("v").collect())
    for key, value in COMPILED_CONF.items():
        spark.conf.set(key, value)
    try:
        compiled = sorted(frame.groupBy("k").sum("v").collect())
    finally:
        for key, value in INTERPRETED_CONF.items():
            spark.conf.set(key, value)
    assert interpreted == compiled
