"""Common CLI handling: bad input is one clear line and exit code 2."""

from __future__ import annotations

import datetime as dt

import pytest

from spark_jobs.cli import (
    EXIT_BAD_INPUT,
    DateRange,
    UserError,
    date_range,
    job_parser,
    resolve_root,
    run_cli,
)


def test_unparsable_date_exits_2_with_one_line(capsys):
    parser = job_parser("some_job", "test")
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--start", "2026-02-30"])
    assert exit_info.value.code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "invalid date '2026-02-30'" in err and "YYYY-MM-DD" in err


def test_end_before_start_is_a_user_error():
    args = job_parser("some_job", "test").parse_args(
        ["--start", "2026-03-02", "--end", "2026-03-01"]
    )
    with pytest.raises(UserError, match="before --start 2026-03-02"):
        date_range(args)


def test_end_defaults_to_start_and_range_is_inclusive():
    args = job_parser("some_job", "test").parse_args(["--start", "2026-03-01"])
    days = list(date_range(args).days())
    assert days == [dt.date(2026, 3, 1)]
    assert len(DateRange(dt.date(2026, 2, 27), dt.date(2026, 3, 2))) == 4


def test_root_under_a_file_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create lakehouse root"):
        resolve_root(str(blocker / "lake"))


def test_unknown_uri_scheme_is_rejected():
    with pytest.raises(UserError, match="unsupported root 'hdfs://nn/lake'"):
        resolve_root("hdfs://nn/lake")


def test_object_store_roots_pass_through_untouched():
    assert resolve_root("s3a://bucket/prefix") == "s3a://bucket/prefix"


def test_run_cli_turns_user_errors_into_exit_2(capsys):
    def main(argv):
        raise UserError("the spine has no ts column")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [])
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == "error: the spine has no ts column"


def test_a_bad_spark_setting_in_the_environment_exits_2_naming_the_variable(monkeypatch, capsys):
    from spark_jobs.config import Settings

    def main(argv):
        Settings.from_env()
        return 0

    for name, value in (("SPARK_CODEGEN", "maybe"), ("SPARK_SHUFFLE_PARTITIONS", "0")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(SystemExit) as exit_info:
                run_cli(main, [])
        assert exit_info.value.code == EXIT_BAD_INPUT
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {name}='{value}'"), line
