"""Expectation suites: the versioned JSON files in ``expectations/`` and what they ask for.

Each expectation carries ``meta.severity``: ``fail`` (the default) blocks the publish,
``warn`` is logged and reported only. Values that depend on the run are suite
parameters (``{"$PARAMETER": "start"}``), filled by ``gate_parameters`` at validation
time. Reading a suite needs no Great Expectations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spark_jobs.catalog import Table
from spark_jobs.config import EXPECTATIONS_DIR

SEVERITY_FAIL = "fail"
SEVERITY_WARN = "warn"
SEVERITIES = (SEVERITY_FAIL, SEVERITY_WARN)

# One suite gates every training set: expectations/training_set.json.
TRAINING_SET_SUITE = "training_set"


def suite_file(suite_name: str) -> Path:
    """Where the versioned JSON file of a suite lives."""
    return EXPECTATIONS_DIR / f"{suite_name}.json"


def suite_name_for(table: Table) -> str:
    """The suite that gates ``table``: its own, or the shared one for training sets."""
    if suite_file(table.suite_name).exists():
        return table.suite_name
    if table.name.startswith("training."):
        return TRAINING_SET_SUITE
    return table.suite_name


def load_suite(suite_name: str) -> dict[str, Any]:
    """The suite's JSON, checked for the things GX does not check (severity values)."""
    path = suite_file(suite_name)
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {suite_name!r}: expected {path}")
    suite = json.loads(path.read_text())
    for expectation in suite["expectations"]:
        severity = expectation.get("meta", {}).get("severity", SEVERITY_FAIL)
        if severity not in SEVERITIES:
            raise ValueError(
                f"{path}: {expectation['type']} has severity {severity!r}; use one of {SEVERITIES}"
            )
    return suite


def suite_parameters(suite: Mapping[str, Any]) -> set[str]:
    """Names of the ``$PARAMETER`` placeholders a suite uses."""
    names: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "$PARAMETER" in value:
                names.add(str(value["$PARAMETER"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(suite["expectations"])
    return names


def severity(config: Any) -> str:
    """The severity a GX expectation configuration carries in its meta (default: fail)."""
    return (config.meta or {}).get("severity", SEVERITY_FAIL)
