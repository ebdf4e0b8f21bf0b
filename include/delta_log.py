"""Read a Delta table's newest commit straight from its ``_delta_log``, without Spark.

Airflow tasks use it to put the published version and row counts on Asset events; a
JVM start for that would cost more than the commit it describes. Works on a local
folder and on ``s3a://`` / ``s3://`` (through the amazon provider's S3 hook).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from pydantic import JsonValue

from spark_jobs.storage.commit_log import commit_file, commit_info, commit_versions


@dataclass(frozen=True)
class Commit:
    """The newest commit of a Delta table."""

    version: int
    timestamp_ms: int | None
    operation: str | None
    metrics: dict[str, str]

    def as_event_extra(self) -> dict[str, JsonValue]:
        """The commit as JSON-friendly Asset event metadata."""
        return {
            "delta_version": self.version,
            "operation": self.operation,
            "commit_timestamp_ms": self.timestamp_ms,
            "rows_written": _int_or_none(self.metrics.get("numOutputRows")),
            "files_written": _int_or_none(self.metrics.get("numFiles")),
            "rows_removed": _int_or_none(self.metrics.get("numRemovedRows")),
        }


def latest_commit(table_path: str) -> Commit | None:
    """The newest commit of the table at ``table_path``; None when it is not a Delta table."""
    log = _LogReader(table_path)
    versions = commit_versions(log.names())
    if not versions:
        return None
    version = versions[-1]
    info = commit_info(log.read(commit_file(version)))
    return Commit(
        version=version,
        timestamp_ms=info.get("timestamp"),
        operation=info.get("operation"),
        metrics={k: str(v) for k, v in (info.get("operationMetrics") or {}).items()},
    )


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


class _LogReader:
    def __init__(self, table_path: str) -> None:
        self.table_path = table_path.rstrip("/")
        self.is_s3 = table_path.startswith(("s3a://", "s3://"))

    def _s3(self) -> tuple[S3Hook, str, str]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = S3Hook.parse_s3_url("s3://" + self.table_path.split("://", 1)[1])
        return S3Hook(), bucket, f"{key.rstrip('/')}/_delta_log/"

    def names(self) -> list[str]:
        if self.is_s3:
            hook, bucket, prefix = self._s3()
            keys = hook.list_keys(bucket_name=bucket, prefix=prefix) or []
            return [k[len(prefix) :] for k in keys]
        folder = Path(self.table_path, "_delta_log")
        return [p.name for p in folder.iterdir()] if folder.is_dir() else []

    def read(self, name: str) -> str:
        if self.is_s3:
            hook, bucket, prefix = self._s3()
            return hook.read_key(prefix + name, bucket_name=bucket)
        return Path(self.table_path, "_delta_log", name).read_text()
