"""The one place that asks whether a Delta table is at a path, and reads it.

Jobs read their inputs and published outputs through these calls, so "is there a table
here yet" means the same thing everywhere: a folder whose ``_delta_log`` holds a commit.

Existence and the newest version come from listing the ``_delta_log`` folder
(``storage.files``), not from Delta's API: that asks the JVM to load the table's snapshot,
a Spark job of its own, and a stage asks these questions a dozen times. Only the reads go
through Spark, with plain ``format("delta")`` calls that work in a classic session and
through Spark Connect alike.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.catalog import join_path
from spark_jobs.storage import files
from spark_jobs.storage.commit_log import commit_file, commit_versions
from spark_jobs.storage.commit_log import commit_info as parse_commit_info

DELTA_LOG = "_delta_log"
# A commit (00000000000000000012.json) or a checkpoint of one (…12.checkpoint.parquet,
# …12.checkpoint.0000000001.0000000002.parquet, a v2 checkpoint …12.checkpoint.<uuid>.json).
_LOG_ENTRY = re.compile(r"^(\d{20})\.(?:json|checkpoint\..*parquet|checkpoint\.[^.]+\.json)$")


def _log_names(path: str) -> list[str]:
    """The file names in the table's ``_delta_log`` ([] when there is none)."""
    return [
        entry.path.rstrip("/").rsplit("/", 1)[-1]
        for entry in files.children(join_path(path, DELTA_LOG))
    ]


def log_versions(path: str) -> list[int]:
    """The versions with a commit file in the table's ``_delta_log``, ascending."""
    return commit_versions(_log_names(path))


def is_delta(spark: SparkSession, path: str) -> bool:
    """True when ``path`` holds a Delta table (a ``_delta_log`` with a commit)."""
    return any(_LOG_ENTRY.match(name) for name in _log_names(path))


def read_if_exists(spark: SparkSession, path: str) -> DataFrame | None:
    """The latest snapshot of the Delta table at ``path``; None when there is none."""
    if not is_delta(spark, path):
        return None
    return spark.read.format("delta").load(path)


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The newest version of the Delta table at ``path``; None when there is none.

    The newest commit file is never removed by log clean-up (only files older than the
    newest checkpoint are), so the listing always holds it.
    """
    versions = log_versions(path)
    return versions[-1] if versions else None


def commit_info(path: str, version: int) -> dict:
    """The ``commitInfo`` action of one commit ({} when the commit has none or is gone).

    Read from the commit file itself, so it costs one small file read and no Spark job.
    Its ``operationMetrics`` hold what the writer counted, e.g. ``numOutputRows``.
    """
    return parse_commit_info(files.read_text(join_path(path, DELTA_LOG, commit_file(version))))


def replaced_rows(path: str) -> int | None:
    """The row count of a table whose newest commit replaced all of it, from that commit.

    That is a plain overwrite (no ``replaceWhere``), as every staging write is; its
    ``numOutputRows`` is then the table's whole content. None for any other table or
    commit (an append, a partial replace, a MERGE): count the rows instead.
    """
    versions = log_versions(path)
    if not versions:
        return None
    info = commit_info(path, versions[-1])
    parameters = info.get("operationParameters") or {}
    rows = (info.get("operationMetrics") or {}).get("numOutputRows")
    if info.get("operation") != "WRITE" or parameters.get("mode") != "Overwrite":
        return None
    if "predicate" in parameters or rows is None:
        return None
    return int(rows)


def row_count(spark: SparkSession, path: str) -> int:
    """The rows of the table at ``path`` (0 when there is none).

    Taken from its newest commit when that replaced the whole table (``replaced_rows``,
    no Spark job), else counted.
    """
    rows = replaced_rows(path)
    if rows is not None:
        return rows
    table = read_if_exists(spark, path)
    return 0 if table is None else table.count()


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    """The Delta table at ``path`` as it was at ``version`` (time travel)."""
    return spark.read.format("delta").option("versionAsOf", version).load(path)


def sql_name(path: str) -> str:
    """The table at ``path`` as Spark SQL names it: delta.`<path>`, backticks escaped.

    Delta commands (MERGE, OPTIMIZE, VACUUM, DESCRIBE HISTORY) go through SQL, which a
    Spark Connect server runs with no Delta plugin of its own.
    """
    return "delta.`" + path.replace("`", "``") + "`"
