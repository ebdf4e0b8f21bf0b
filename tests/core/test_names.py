"""The safe-name rule: a name that becomes a path stays one plain segment (no Spark)."""

from __future__ import annotations

import os
import re

import pytest

from spark_jobs.cli import UserError
from spark_jobs.names import (
    MAX_NAME_LENGTH,
    SAFE_NAME,
    UnsafeNameError,
    child_path,
    is_safe_name,
    validate_name,
)

UNSAFE = [
    "..",
    ".",
    "../bronze/purchases",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "%2e%2e%2f",
    "..%2f",
    ".hidden",
    "_staging",
    "-rf",
    "",
    " ",
    "churn v1",
    "\t",
    "name\x00",
    "\x00",
    "name\n",
    "name\r\n",
    "\nname",
    "ｃｈｕｒｎ",  # fullwidth letters
    "сhurn",  # Cyrillic "с"
    "churn\u200b",  # zero-width space
    "x" * (MAX_NAME_LENGTH + 1),
    "s3a://bucket/x",
    "~root",
]


@pytest.mark.parametrize("value", UNSAFE, ids=repr)
def test_unsafe_names_are_refused_with_what_was_wrong_and_what_is_allowed(value):
    with pytest.raises(UnsafeNameError) as refused:
        validate_name(value, "training set name")
    message = str(refused.value)
    assert message.startswith("training set name ")
    assert "letters, digits, _ and -" in message


@pytest.mark.parametrize(
    "value",
    ["churn_v1", "a", "A-1", "2026-03-01_2026-03-07", "all", "min_2026-03-07", "x" * 128],
)
def test_plain_names_and_run_keys_pass_unchanged(value):
    assert validate_name(value) == value


def test_an_overlong_name_says_how_long_it_is():
    with pytest.raises(UnsafeNameError, match="is 129 characters long"):
        validate_name("x" * 129)


def test_a_name_that_is_not_a_string_is_refused():
    assert not is_safe_name(None)
    with pytest.raises(UnsafeNameError, match="None is not a plain name"):
        validate_name(None)


def test_an_unsafe_name_is_a_user_error_and_a_value_error():
    # run_cli turns UserError into exit code 2; argparse and callers may catch ValueError.
    assert issubclass(UnsafeNameError, UserError)
    assert issubclass(UnsafeNameError, ValueError)


@pytest.mark.parametrize("value", ["name\n", "../x", ".hidden"], ids=repr)
def test_the_pattern_string_refuses_under_re_search_as_json_schema_uses_it(value):
    assert re.search(SAFE_NAME, value) is None
    assert re.search(SAFE_NAME, "churn_v1")


def test_child_path_joins_a_safe_name_onto_its_base(tmp_path):
    assert child_path(str(tmp_path), "churn") == f"{tmp_path}/churn"
    assert child_path(f"{tmp_path}/", "churn") == f"{tmp_path}/churn"
    assert child_path("s3a://bucket/lake/training", "churn") == "s3a://bucket/lake/training/churn"


@pytest.mark.parametrize("base", ["s3a://bucket/lake/training", "/tmp/lake/training"])
def test_child_path_refuses_a_name_that_climbs_out(base):
    with pytest.raises(UnsafeNameError):
        child_path(base, "../bronze/purchases")


def test_child_path_refuses_a_symlink_inside_base_pointing_outside(tmp_path):
    base = tmp_path / "training"
    base.mkdir()
    outside = tmp_path / "bronze"
    outside.mkdir()
    sentinel = outside / "sentinel"
    sentinel.write_text("keep")
    os.symlink(outside, base / "evil")
    with pytest.raises(UnsafeNameError, match="outside") as refused:
        child_path(str(base), "evil", "training set name")
    assert "remove the link" in str(refused.value)
    assert sentinel.read_text() == "keep"


def test_child_path_accepts_a_base_that_is_itself_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "lake")
    assert child_path(str(tmp_path / "lake"), "churn") == f"{tmp_path}/lake/churn"


def test_child_path_accepts_a_link_that_stays_inside_base(tmp_path):
    (tmp_path / "v2").mkdir()
    os.symlink(tmp_path / "v2", tmp_path / "current")
    assert child_path(str(tmp_path), "current") == f"{tmp_path}/current"
