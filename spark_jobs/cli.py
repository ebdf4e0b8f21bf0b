"""Shared command-line handling: every job takes ``--root --start --end`` the same way.

Bad input (an unparsable date, end before start, a missing or unwritable root) exits
with code 2 and one line that says what to fix, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pendulum

from spark_jobs.config import Settings, SettingsError

log = logging.getLogger("spark_jobs")

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3


class UserError(Exception):
    """Input a person must fix; printed as one line, exit code 2."""


class ServiceUnavailable(Exception):
    """A service the job needs (the Spark Connect server) cannot be used; exit code 1.

    Printed as one line; unlike bad input it may pass by itself, so Airflow retries it.
    """


class GateFailed(Exception):
    """A validation gate rejected the data; nothing was published. Exit code 3."""


# The date forms accepted: YYYY-MM-DD, YYYYMMDD and the ISO week dates YYYY-Www[-D] and
# YYYYWww[D] (day 1 when left out). pendulum.parse alone also reads ordinal dates,
# "2026-03", times and "now", so the form is matched first.
_DATE_FORM = re.compile(
    r"[0-9]{4}(?:-[0-9]{2}-[0-9]{2}|[0-9]{4}|(?P<sep>-?)W(?P<week>[0-9]{2})(?:(?P=sep)[1-7])?)"
)


def parse_date(value: str) -> dt.date:
    """A YYYY-MM-DD date (or YYYYMMDD, or an ISO week date), for argparse."""
    form = _DATE_FORM.fullmatch(value)
    try:
        parsed = pendulum.parse(value, strict=True, exact=True) if form else None
    except ValueError:  # pendulum's ParserError: no such day, e.g. 2026-02-30
        parsed = None
    if (
        form is None
        or not isinstance(parsed, pendulum.Date)
        or isinstance(parsed, pendulum.DateTime)
        # pendulum rolls week 00, and week 53 of a 52-week year, into a neighbouring week
        or (form["week"] is not None and parsed.isocalendar().week != int(form["week"]))
    ):
        raise argparse.ArgumentTypeError(
            f"invalid date {value!r}: expected YYYY-MM-DD, e.g. 2026-03-01"
        )
    return dt.date(parsed.year, parsed.month, parsed.day)  # a plain date, not pendulum's


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


# The steps of a write-audit-publish job: stage the rows, gate and publish them, or both.
STEPS = ("all", "build", "publish")
STEP_HELP = "build: compute and stage; publish: gate and commit the staged rows; all: both"


def job_parser(
    prog: str,
    description: str,
    *,
    start_help: str | None = None,
    end_help: str | None = None,
    steps: str | None = None,
) -> argparse.ArgumentParser:
    """An argument parser with the common ``--root/--start/--end/--run-id`` options.

    ``start_help`` makes ``--start`` optional with that help (a job that is not about a
    date range); ``end_help`` rewords ``--end``. ``steps`` adds ``--step`` (``STEPS``,
    default ``all``) with that help (``STEP_HELP`` fits most jobs).
    """
    parser = _Parser(prog=f"python -m spark_jobs.{prog}", description=description)
    parser.add_argument(
        "--root",
        default=None,
        help="lakehouse root: a local folder or s3a://bucket/prefix "
        "(default: $LAKEHOUSE_ROOT, else ./lakehouse)",
    )
    parser.add_argument(
        "--start",
        type=parse_date,
        required=start_help is None,
        help=start_help or "first logical date, YYYY-MM-DD",
    )
    parser.add_argument(
        "--end",
        type=parse_date,
        default=None,
        help=end_help or "last logical date, inclusive (default: --start)",
    )
    parser.add_argument(
        "--run-id",
        default=None,
        help="the run whose build and publish steps share staged rows (Airflow passes its "
        "run id, so two runs of the same dates never mix theirs); default: a new one for "
        "--step all, none for a step run on its own",
    )
    if steps is not None:
        parser.add_argument("--step", choices=STEPS, default="all", help=steps)
    return parser


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of logical dates, and the run that works on it (if named)."""

    start: dt.date
    end: dt.date
    run: str = ""  # run_token() of the run; "" for a step run by hand on its own

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise UserError(
                f"--end {self.end} is before --start {self.start}: the range is inclusive, "
                "give an end on or after the start"
            )

    def days(self) -> Iterator[dt.date]:
        """Every date of the range, in order."""
        day = self.start
        while day <= self.end:
            yield day
            day += dt.timedelta(days=1)

    def __len__(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def key(self) -> str:
        """The run's name for its staging folders and reports: dates, then the run."""
        dates = f"{self.start}_{self.end}"
        return f"{dates}__{self.run}" if self.run else dates


def run_token(run_id: str | None, step: str | None) -> str:
    """A path-safe name for a run: from ``--run-id``, new for ``--step all``, else "".

    Airflow run ids hold ``:`` and ``+``; they are replaced, and a short hash of the
    whole id keeps two ids that differ only there apart.
    """
    if run_id:
        readable = re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-")[:60]
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
        return f"{readable}-{digest}" if readable else digest
    if step in (None, "all"):
        return f"run-{uuid.uuid4().hex[:12]}"
    return ""


def resolve_root(root: str | None) -> str:
    """The lakehouse root to use; a local root must exist or be creatable and writable."""
    root = root or Settings.from_env().lakehouse_root
    if root.startswith(("s3a://", "s3://")):
        return root
    if "://" in root:
        raise UserError(
            f"unsupported root {root!r}: use a local folder or an s3a://bucket/prefix URI"
        )
    path = Path(root).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create lakehouse root {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"lakehouse root {path} is not writable; choose another --root")
    return str(path)


def date_range(args: argparse.Namespace) -> DateRange:
    """The inclusive logical date range of parsed arguments, named by its run."""
    run = run_token(getattr(args, "run_id", None), getattr(args, "step", None))
    return DateRange(args.start, args.end or args.start, run)


def run_cli(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> None:
    """Run a job's main and turn people-facing errors into one line and an exit code."""
    level = os.environ.get("LAKEHOUSE_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        # Great Expectations logs some 150 INFO lines about itself on import alone.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        code = main(argv)
    except (UserError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except GateFailed as exc:
        print(f"gate failed: {exc}", file=sys.stderr)
        sys.exit(EXIT_GATE_FAILED)
    except ServiceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)
