"""Read a small Delta table's current rows without Spark: its log, then its Parquet files.

For the operations report and the Airflow UI page, which read ``ops.stage_runs`` (a few
rows per stage run) in processes that have no JVM and should not start one. Handles
what Spark writes for an unpartitioned append table: JSON commits, a classic checkpoint
(single or multi-part Parquet) and log clean-up. A table that needs more (deletion
vectors, column mapping, v2 checkpoints) is refused with a clear error, not misread.
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spark_jobs.storage import files
from spark_jobs.storage.commit_log import commit_file, commit_versions

_LOG = "_delta_log"
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")


class UnsupportedTable(ValueError):
    """The table uses a Delta feature this reader does not implement."""


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *(p.strip("/") for p in parts[1:])])


def active_files(table_path: str) -> list[str]:
    """The data files of the table's newest version, as paths ([] when no table)."""
    log = _join(table_path, _LOG)
    names = [e.path.rstrip("/").rsplit("/", 1)[-1] for e in files.children(log)]
    versions = commit_versions(names)
    checkpoint = _newest_checkpoint(names)
    live: dict[str, None] = {}
    after = -1
    if checkpoint is not None:
        after, parts = checkpoint
        for part in parts:
            data = files.read_bytes(_join(log, part))
            if data is None:
                raise UnsupportedTable(f"checkpoint {part} of {table_path} vanished while read")
            _apply_checkpoint(pq.read_table(io.BytesIO(data), columns=["add"]), live)
    for version in versions:
        if version <= after:
            continue
        text = files.read_text(_join(log, commit_file(version)))
        for line in (text or "").splitlines():
            if line.strip():
                _apply_action(json.loads(line), live, table_path)
    return [_join(table_path, urllib.parse.unquote(path)) for path in live]


def read_rows(table_path: str) -> list[dict[str, Any]]:
    """Every row of the table's newest version, as dicts ([] when there is no table)."""
    tables = []
    for path in active_files(table_path):
        data = files.read_bytes(path)
        if data is None:  # removed by a newer commit since the log was read
            continue
        tables.append(pq.read_table(io.BytesIO(data)))
    if not tables:
        return []
    return pa.concat_tables(tables, promote_options="default").to_pylist()


def _newest_checkpoint(names: list[str]) -> tuple[int, list[str]] | None:
    """The newest complete classic checkpoint: its version and its file names."""
    found: dict[int, dict[str, list[str]]] = {}
    for name in names:
        match = _CHECKPOINT.match(name)
        if match:
            parts = match.group(3) or "1"
            found.setdefault(int(match.group(1)), {}).setdefault(parts, []).append(name)
    for version in sorted(found, reverse=True):
        for parts, present in found[version].items():
            if len(present) == int(parts):
                return version, sorted(present)
    return None


def _apply_checkpoint(table: pa.Table, live: dict[str, None]) -> None:
    for add in table.column("add").to_pylist():
        if add is not None:
            live[add["path"]] = None


def _apply_action(action: dict, live: dict[str, None], table_path: str) -> None:
    if "add" in action:
        if action["add"].get("deletionVector"):
            raise UnsupportedTable(f"{table_path} uses deletion vectors; read it with Spark")
        live[action["add"]["path"]] = None
    elif "remove" in action:
        live.pop(action["remove"]["path"], None)
    elif "metaData" in action:
        config = action["metaData"].get("configuration") or {}
        if config.get("delta.columnMapping.mode", "none") != "none":
            raise UnsupportedTable(f"{table_path} uses column mapping; read it with Spark")
        if action["metaData"].get("partitionColumns"):
            raise UnsupportedTable(f"{table_path} is partitioned; read it with Spark")
