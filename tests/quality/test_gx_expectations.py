"""The lakehouse's row-condition expectation, run by Great Expectations on Spark."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from spark_jobs.quality import gx_runner


@pytest.fixture(scope="module")
def validate(spark: SparkSession):
    """Validate one expect_column_values_to_satisfy_condition on a small frame."""
    context = gx_runner.context()  # registers the expectation, as a gate does
    from spark_jobs.quality.gx_expectations import ExpectColumnValuesToSatisfyCondition

    datasource = context.data_sources.add_spark(name="condition_tests")
    asset = datasource.add_dataframe_asset(name="rows")
    batch_definition = asset.add_batch_definition_whole_dataframe("all")
    frame = spark.createDataFrame(
        [(1, 2, "ok"), (5, 1, "a > b"), (None, 1, "a null"), (3, None, "b null")],
        "a int, b int, note string",
    )

    def run(column: str, condition: str, mostly: float = 1.0):
        expectation = ExpectColumnValuesToSatisfyCondition(
            column=column, condition=condition, mostly=mostly
        )
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(
            expectation, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}
        )

    return run


def test_rows_breaking_the_condition_or_making_it_null_are_unexpected(validate):
    result = validate("a", "a <= b")

    assert not result.success
    # The row with a null `a` is not checked; the null `b` makes the condition null.
    assert result.result["element_count"] == 4
    assert result.result["missing_count"] == 1
    assert result.result["unexpected_count"] == 2
    assert sorted(result.result["partial_unexpected_list"]) == [3, 5]


def test_a_condition_every_checked_row_meets_passes(validate):
    result = validate("note", "note IS NOT NULL AND length(note) > 1")

    assert result.success
    assert result.result["unexpected_count"] == 0


def test_mostly_lets_a_share_of_rows_miss(validate):
    assert validate("a", "a <= b", mostly=0.3).success
    assert not validate("a", "a <= b", mostly=0.5).success


def test_a_condition_naming_a_missing_column_cannot_pass(validate):
    result = validate("a", "a <= no_such_column")

    assert not result.success
    assert "no_such_column" in str(result.exception_info)
