"""build_training_set refuses names that would leave <root>/training, before any Spark work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_jobs.cli import EXIT_BAD_INPUT, run_cli
from spark_jobs.jobs import build_training_set as job


@pytest.fixture
def guarded_lakehouse(lakehouse: str) -> Path:
    """A lakehouse whose bronze.purchases holds a sentinel file that must survive."""
    bronze = Path(lakehouse, "bronze", "purchases")
    bronze.mkdir(parents=True)
    (bronze / "sentinel").write_text("bronze data")
    return Path(lakehouse)


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def no_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the job starts a Spark session."""

    def refuse(**_: object) -> None:
        raise AssertionError("a Spark session was started before the name was checked")

    monkeypatch.setattr(job, "build_spark", refuse)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(job.main, argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["../bronze/purchases", "..", "/etc/passwd", "x\n", ".hidden"])
def test_a_name_outside_training_exits_2_and_writes_nothing(
    guarded_lakehouse, no_spark, capsys, tmp_path, name
):
    before = _files(guarded_lakehouse)
    spine = tmp_path / "spine.csv"
    spine.write_text("user_id,ts,label\na,2026-03-01T00:00:00Z,1\n")
    code, err = _run(
        ["--root", str(guarded_lakehouse), "--spine", str(spine), "--name", name], capsys
    )
    assert code == EXIT_BAD_INPUT
    assert "argument --name: training set name" in err
    assert "letters, digits, _ and -" in err
    assert err.strip().count("\n") == 0
    assert _files(guarded_lakehouse) == before
    assert not (guarded_lakehouse / "training").exists()


def test_rebuild_from_a_bare_name_outside_training_exits_2(guarded_lakehouse, no_spark, capsys):
    before = _files(guarded_lakehouse)
    code, err = _run(
        ["--root", str(guarded_lakehouse), "--rebuild-from", "../bronze/purchases"], capsys
    )
    assert code == EXIT_BAD_INPUT
    assert "argument --rebuild-from" in err and "_manifest.json" in err
    assert _files(guarded_lakehouse) == before


def test_rebuild_from_takes_any_manifest_path_to_read():
    args = job.build_parser().parse_args(["--rebuild-from", "../elsewhere/_manifest.json"])
    assert args.rebuild_from == "../elsewhere/_manifest.json"


def test_rebuild_output_name_derived_from_a_tampered_manifest_exits_2(
    guarded_lakehouse, spark, monkeypatch, capsys, tmp_path
):
    # A manifest is a file in the lakehouse: its recorded name is not trusted either.
    monkeypatch.setattr(job, "build_spark", lambda **_: spark)
    manifest = tmp_path / "_manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "format_version": 1,
                "name": "../bronze/purchases",
                "parameters": {},
                "spine": {"path": str(tmp_path / "spine"), "format": "parquet"},
            }
        )
    )
    before = _files(guarded_lakehouse)
    code, err = _run(["--root", str(guarded_lakehouse), "--rebuild-from", str(manifest)], capsys)
    assert code == EXIT_BAD_INPUT
    assert "error: output name derived from" in err
    assert "'../bronze/purchases_rebuilt' is not a plain name" in err
    assert _files(guarded_lakehouse) == before
