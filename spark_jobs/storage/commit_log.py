"""The names and the ``commitInfo`` of Delta commit files, parsed without Spark.

Pure functions on file names and text, with no pyspark and no storage client, so the
jobs (``storage.delta``) and the Airflow side (``include.delta_log``, which lists and
reads through the amazon provider's hook) read the log the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# A commit file: 00000000000000000012.json
COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def commit_versions(names: Iterable[str]) -> list[int]:
    """The versions that have a commit file among ``names`` (a ``_delta_log``), ascending."""
    return sorted(int(m.group(1)) for name in names if (m := COMMIT_FILE.match(name)))


def commit_file(version: int) -> str:
    """The file name of a version's commit in ``_delta_log``."""
    return f"{version:020d}.json"


def commit_info(text: str | None) -> dict:
    """The ``commitInfo`` action of a commit file's text ({} when it has none)."""
    for line in (text or "").splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            return dict(action["commitInfo"])
    return {}
