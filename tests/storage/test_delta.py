"""storage.delta answers "is there a table" and "which version" from the _delta_log listing."""

from __future__ import annotations

from pathlib import Path

from delta.tables import DeltaTable

from spark_jobs.storage import delta


def history_version(spark, path: str) -> int:
    """The newest version as Delta's own API reports it."""
    return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def test_a_folder_without_a_commit_is_not_a_table(spark, tmp_path: Path) -> None:
    assert not delta.is_delta(spark, str(tmp_path / "nothing-here"))
    log = tmp_path / "half" / "_delta_log"
    log.mkdir(parents=True)
    (log / ".00000000000000000000.json.tmp").write_text("{}")  # a commit never finished
    assert not delta.is_delta(spark, str(tmp_path / "half"))
    assert delta.latest_version(spark, str(tmp_path / "half")) is None
    assert delta.read_if_exists(spark, str(tmp_path / "half")) is None


def test_latest_version_agrees_with_delta_across_a_checkpoint_and_log_clean_up(
    spark, tmp_path: Path
) -> None:
    path = str(tmp_path / "table")
    for number in range(12):  # Delta checkpoints every 10 commits
        spark.range(number, number + 1).write.format("delta").mode("append").save(path)
        assert delta.latest_version(spark, path) == history_version(spark, path) == number
    log = Path(path, "_delta_log")
    assert list(log.glob("*.checkpoint.parquet")), "the test needs a checkpoint"

    # Log clean-up removes the commits older than the newest checkpoint.
    for old in range(10):
        (log / f"{old:020d}.json").unlink()
    assert delta.is_delta(spark, path)
    assert delta.latest_version(spark, path) == 11
    assert delta.log_versions(path) == [10, 11]
    assert delta.read_if_exists(spark, path).count() == 12  # type: ignore[union-attr]


def test_sql_name_quotes_backticks_in_a_path() -> None:
    assert delta.sql_name("/data/odd`name") == "delta.`/data/odd``name`"


def test_replaced_rows_is_the_count_of_a_whole_overwrite_and_none_otherwise(
    spark, tmp_path: Path
) -> None:
    path = str(tmp_path / "staged")
    assert delta.replaced_rows(path) is None  # no table yet
    spark.range(7).write.format("delta").mode("overwrite").save(path)
    assert delta.replaced_rows(path) == 7 == spark.read.format("delta").load(path).count()
    spark.range(3).write.format("delta").mode("overwrite").save(path)  # a retry's overwrite
    assert delta.replaced_rows(path) == 3 == spark.read.format("delta").load(path).count()

    spark.range(2).write.format("delta").mode("append").save(path)
    assert delta.replaced_rows(path) is None  # 5 rows now; the append counted 2
    (
        spark.range(1)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", "id = 0")
        .save(path)
    )
    assert delta.replaced_rows(path) is None  # a partial replace counts only its own rows
    # 3 + 2 rows, of which the replace swapped the two id-0 rows for one: counted, then.
    assert delta.row_count(spark, path) == 4 == spark.read.format("delta").load(path).count()
    assert delta.row_count(spark, str(tmp_path / "none")) == 0
    assert delta.commit_info(path, 0)["operation"] == "WRITE"
