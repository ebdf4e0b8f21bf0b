"""The one rule for names that become part of a path: training sets, run keys.

A name is one path segment: it starts with an ASCII letter or digit and goes on with
letters, digits, ``_`` and ``-``, at most 128 characters. No dots, slashes, percent
signs, spaces, control characters or look-alike Unicode letters, so a name can never
climb out of the folder it is joined onto (``..``), reach an absolute path, or hide.

No pyspark here: the DAG files import this module when Airflow parses them.
"""

from __future__ import annotations

import os
import re

from spark_jobs.cli import UserError

MAX_NAME_LENGTH = 128
# JSON Schema (Airflow Params) matches with re.search, where "$" also matches before a
# trailing newline; the look-ahead refuses "name\n" there too. Used as is by the Params.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$(?!\n)"
_SAFE_NAME = re.compile(SAFE_NAME)
ALLOWED = f"1 to {MAX_NAME_LENGTH} ASCII letters, digits, _ and -, starting with a letter or digit"


class UnsafeNameError(UserError, ValueError):
    """A name that would not stay one plain path segment; a user error (exit code 2)."""


def is_safe_name(value: object) -> bool:
    """True when ``value`` is a string that passes the safe-name rule."""
    return isinstance(value, str) and _SAFE_NAME.fullmatch(value) is not None


def validate_name(value: object, what: str = "name") -> str:
    """``value`` unchanged when it passes the safe-name rule; else UnsafeNameError.

    ``what`` names the value for the message, e.g. ``"--name"`` or ``"training set name"``.
    """
    if is_safe_name(value):
        return str(value)
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
        problem = f"is {len(value)} characters long"
    else:
        problem = "is not a plain name"
    raise UnsafeNameError(
        f"{what} {shown} {problem}: it becomes part of a path, so use {ALLOWED} (e.g. churn_v1)"
    )


def child_path(base: str, name: str, what: str = "name") -> str:
    """``base/name`` once ``name`` passes the rule and the result stays inside ``base``.

    For an object-store URI (``s3a://...``) the name rule suffices: keys have no links.
    A local path is resolved (symbolic links followed) and must still lie inside the
    resolved ``base``, so a link planted under ``base`` cannot redirect a write.
    """
    validate_name(name, what)
    joined = "/".join([base.rstrip("/"), name])
    if "://" in base:
        return joined
    real_base = os.path.realpath(base)
    real = os.path.realpath(joined)
    if os.path.commonpath([real_base, real]) != real_base:
        raise UnsafeNameError(
            f"{what} {name!r} resolves to {real}, outside {real_base}: a symbolic link "
            f"under {base} points elsewhere; remove the link or choose another {what}"
        )
    return joined
