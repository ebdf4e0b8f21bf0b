"""The landing sensor passes on exactly the files ingest_bronze will read."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.operators import LandingDaySensor
from spark_jobs.catalog import landing_day_path

DAY = "2026-03-01"


def sensor(root: str) -> LandingDaySensor:
    return LandingDaySensor(task_id="landing_purchases", lakehouse_root=root, landing_date=DAY)


@pytest.mark.parametrize(
    "names",
    [
        [],
        ["_upload_in_progress.jsonl"],
        [".part-00000.jsonl.gz"],
        ["part-00000.csv", "notes.txt"],
    ],
)
def test_hidden_or_foreign_files_do_not_count_as_landed(lakehouse: str, names) -> None:
    folder = Path(landing_day_path(lakehouse, DAY))
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text('{"event_id":"e1"}\n')

    assert sensor(lakehouse).poke({}) is False


def test_a_folder_named_like_a_landing_file_does_not_count(lakehouse: str) -> None:
    (Path(landing_day_path(lakehouse, DAY)) / "part-00000.jsonl").mkdir(parents=True)

    assert sensor(lakehouse).poke({}) is False


def test_a_missing_landing_folder_is_not_landed_yet(lakehouse: str) -> None:
    assert sensor(lakehouse).poke({}) is False


@pytest.mark.parametrize("name", ["part-00000.jsonl", "part-00000.jsonl.gz"])
def test_a_landing_file_passes(lakehouse: str, name: str) -> None:
    folder = Path(landing_day_path(lakehouse, DAY))
    folder.mkdir(parents=True)
    (folder / "_upload_in_progress.jsonl").write_text("")
    (folder / name).write_bytes(b"")

    assert sensor(lakehouse).poke({}) is True
