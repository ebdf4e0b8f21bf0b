"""File-system access through the Spark session's Hadoop file system, local and S3 alike.

Paths are the lakehouse's own: a local folder path or an ``s3a://`` URI. Used for what
Delta does not do itself: listing run folders, removing staging once it is published.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Entry:
    """One child of a folder: its path and when it last changed (UTC)."""

    path: str
    modified_at: dt.datetime
    is_dir: bool


def _file_system(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    return hadoop_path.getFileSystem(conf), hadoop_path


def delete_tree(spark: SparkSession, path: str) -> bool:
    """Remove a folder and everything under it; False when there was nothing there."""
    fs, hadoop_path = _file_system(spark, path)
    if not fs.exists(hadoop_path):
        return False
    return bool(fs.delete(hadoop_path, True))


def children(spark: SparkSession, path: str) -> list[Entry]:
    """The entries directly under a folder, by path; [] when the folder does not exist."""
    fs, hadoop_path = _file_system(spark, path)
    if not fs.exists(hadoop_path):
        return []
    entries = []
    for status in fs.listStatus(hadoop_path):
        modified = dt.datetime.fromtimestamp(status.getModificationTime() / 1000, tz=dt.UTC)
        location = str(status.getPath().toString())
        entries.append(Entry(location, modified.replace(tzinfo=None), bool(status.isDirectory())))
    return sorted(entries, key=lambda e: e.path)


def is_local(path: str) -> bool:
    """True for a local folder path (or ``file:`` URI), False for an object store."""
    return "://" not in path or path.startswith("file:")


def write_text_atomic(spark: SparkSession, path: str, text: str) -> None:
    """Replace a small text file so that a reader sees the old or the new text, never half.

    Locally the text goes to a hidden sibling first and is renamed over the file (one
    rename is atomic on POSIX). An object store shows an object only once its upload
    completed, so there the file is written in place.
    """
    if is_local(path):
        target = Path(path.removeprefix("file:").removeprefix("//"))
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(draft, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(draft, target)
        return
    fs, hadoop_path = _file_system(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str | None:
    """The text of a small file; None when there is no such file."""
    fs, hadoop_path = _file_system(spark, path)
    if not fs.exists(hadoop_path):
        return None
    stream = fs.open(hadoop_path)
    try:
        return bytes(stream.readAllBytes()).decode("utf-8")
    finally:
        stream.close()
