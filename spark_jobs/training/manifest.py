"""Training-set manifests: what a training set was built from, to rebuild it exactly.

A manifest is one JSON file, ``<root>/training/<name>/_manifest.json``, beside the Delta
log of the training set (Delta and VACUUM ignore files whose name starts with ``_``).
It records the spine (path, format, Delta version, fingerprint), the parameters, the
Delta version of every feature table read, row counts and the build's logical time.
Files go through spark_jobs.storage.files, so a local root and s3a:// work alike, and a
manifest is replaced whole: a reader never sees half of one.

``draft_manifest`` writes down a build (staged beside its rows), ``final_manifest`` adds
what publishing it gave, and ``recorded_request`` turns a manifest back into the
``Request`` that rebuilds it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_jobs.catalog import join_path, training_path
from spark_jobs.cli import UserError
from spark_jobs.storage import files as storage
from spark_jobs.training.plan import Request, TablePlan
from spark_jobs.training.spine import SpineSource
from spark_jobs.transforms import pit

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
    storage.write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(spark: SparkSession, path: str) -> dict[str, Any]:
    """The manifest at ``path``; a clear error when it is missing or not a manifest."""
    text = storage.read_text(path)
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


def logical_time(request: Request, bounds: pit.SpineBounds) -> str | None:
    """The build's logical time: the end of its date range, else the spine's last ts.

    Never the wall clock, so a rebuild records the same instant.
    """
    if request.end is not None:
        return f"{request.end + dt.timedelta(days=1)}T00:00:00Z"
    return bounds.max_ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if bounds.max_ts else None


def draft_manifest(
    request: Request,
    bounds: pit.SpineBounds,
    fingerprint: str,
    plans: Sequence[TablePlan],
    inputs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The manifest of a built, not yet published training set."""
    return {
        "format_version": FORMAT_VERSION,
        "name": request.name,
        "logical_time": logical_time(request, bounds),
        "spine": {**asdict(request.spine), "fingerprint": fingerprint},
        "parameters": {
            "options": asdict(request.options),
            "strategy_used": pit.choose_strategy(request.options, bounds),
            "feature_tables": list(request.feature_tables),
            "features": list(request.features) if request.features else None,
            "start": str(request.start) if request.start else None,
            "end": str(request.end) if request.end else None,
        },
        "columns": {p.table: dict(zip(p.features, p.output_names, strict=True)) for p in plans},
        "metadata_prefixes": [p.metadata_prefix for p in plans],
        "inputs": inputs,
        "row_counts": {"spine": bounds.rows},
        "rebuilt_from": request.rebuilt_from,
    }


def recorded_options(manifest: dict[str, Any]) -> pit.PitOptions:
    """The point-in-time options a manifest recorded."""
    return pit.PitOptions(**manifest["parameters"]["options"])


def final_manifest(
    draft: dict[str, Any], path: str, version: int, published: DataFrame
) -> dict[str, Any]:
    """The draft completed with the published output: its path, Delta version, row counts.

    ``matched`` counts the rows whose first feature table gave a snapshot (one Spark job).
    """
    spine_rows = draft["row_counts"]["spine"]
    matched_column = draft["metadata_prefixes"][0] + pit.FEATURE_TS
    return {
        **draft,
        "output": {"path": path, "delta_version": version},
        "row_counts": {
            "spine": spine_rows,
            "output": spine_rows,
            "matched": published.where(F.col(matched_column).isNotNull()).count(),
        },
    }


def recorded_request(manifest: dict[str, Any], path: str, name: str) -> Request:
    """The request that rebuilds the training set of ``manifest`` (read from ``path``) as ``name``.

    It reads the spine and every feature table at the versions the manifest recorded.
    """
    params = manifest["parameters"]
    spine = manifest["spine"]
    return Request(
        name=name,
        spine=SpineSource(spine["path"], spine["format"], spine.get("delta_version")),
        options=recorded_options(manifest),
        feature_tables=tuple(params["feature_tables"]),
        features=tuple(params["features"]) if params["features"] else None,
        start=dt.date.fromisoformat(params["start"]) if params["start"] else None,
        end=dt.date.fromisoformat(params["end"]) if params["end"] else None,
        input_versions={table: i["delta_version"] for table, i in manifest["inputs"].items()},
        spine_fingerprint=spine["fingerprint"],
        rebuilt_from=path,
    )
