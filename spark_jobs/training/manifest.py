"""Training-set manifests: what a training set was built from, to rebuild it exactly.

A manifest is one JSON file, ``<root>/training/<name>/_manifest.json``, beside the Delta
log of the training set (Delta and VACUUM ignore files whose name starts with ``_``).
It records the spine (path, format, Delta version, fingerprint), the parameters, the
Delta version of every feature table read, row counts and the build's logical time.
Files go through spark_jobs.storage.files, so a local root and s3a:// work alike, and a
manifest is replaced whole: a reader never sees half of one.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import SparkSession

from spark_jobs.catalog import join_path, training_path
from spark_jobs.cli import UserError
from spark_jobs.storage import files as storage

MANIFEST_FILE = "_manifest.json"
FORMAT_VERSION = 1


def manifest_path(root: str, name: str) -> str:
    """Where the manifest of training set ``name`` lives."""
    return join_path(training_path(root, name), MANIFEST_FILE)


def resolve_manifest(root: str, path_or_name: str) -> str:
    """A manifest path from either a path to a ``.json`` file or a training set name."""
    if path_or_name.endswith(".json"):
        return path_or_name
    return manifest_path(root, path_or_name)


def write_manifest(spark: SparkSession, path: str, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as indented JSON to ``path``, replacing an older one atomically.

    A run killed while writing leaves the previous manifest (or none), never half of one.
    """
    storage.write_text_atomic(spark, path, json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(spark: SparkSession, path: str) -> dict[str, Any]:
    """The manifest at ``path``; a clear error when it is missing or not a manifest."""
    text = storage.read_text(spark, path)
    if text is None:
        raise UserError(
            f"no training-set manifest at {path}: give the path of a _manifest.json or "
            "the name of a training set built under this --root"
        )
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path} has manifest format {manifest.get('format_version')!r}; "
            f"this build reads format {FORMAT_VERSION}"
        )
    return manifest
