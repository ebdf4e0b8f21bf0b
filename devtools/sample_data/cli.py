"""The command line: ``python -m devtools.generate_purchases --root R --start ... --end ...``."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence

from pyspark.sql import SparkSession

from devtools.sample_data.generator import generate, validate
from devtools.sample_data.scenario import Rates
from spark_jobs.cli import date_range, job_parser, parse_date, resolve_root

_RATE_HELP = {
    "defect_rate": "share of broken records (default 0.01; 0 turns all defects off)",
    "late_rate": "share of purchase orders landing 1..10 days late (default 0.03)",
    "retry_rate": "share of repeated deliveries (default 0.01)",
    "refund_rate": "share of refunds of earlier purchases (default 0.04)",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, generate the landing files, print a summary; 0 on success."""
    args = parser().parse_args(argv)
    days = date_range(args)
    rates = Rates(args.defect_rate, args.late_rate, args.retry_rate, args.refund_rate)
    events_per_day = args.users if args.events_per_day is None else args.events_per_day
    history_start = args.history_start or days.start
    validate(
        days, args.users, rates, events_per_day, args.files_per_day, args.skip_dates, history_start
    )
    root = resolve_root(args.root)
    from spark_jobs.session import build_spark

    spark = SparkSession.getActiveSession() or build_spark(app_name="generate_purchases")
    summary = generate(
        spark,
        root,
        days.start,
        days.end,
        args.users,
        args.seed,
        defect_rate=rates.defect_rate,
        late_rate=rates.late_rate,
        retry_rate=rates.retry_rate,
        refund_rate=rates.refund_rate,
        events_per_day=events_per_day,
        files_per_day=args.files_per_day,
        compress=args.gzip,
        skip_dates=args.skip_dates,
        history_start=history_start,
    )
    print(summary.describe())
    return 0


def parser() -> argparse.ArgumentParser:
    """The job's options: the shared --root/--start/--end and the generator's own."""
    parser = job_parser(
        "generate_purchases",
        "Write sample purchase events to <root>/landing/purchases/dt=YYYY-MM-DD/, "
        "with late, refunded, retried and broken records (see docs/GENERATOR.md).",
    )
    parser.add_argument("--users", type=int, default=1000, help="customers (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same files (default 1)")
    parser.add_argument(
        "--events-per-day",
        type=int,
        default=None,
        help="purchase and refund events per landing day, before retries and defects "
        "(default: --users)",
    )
    parser.add_argument("--files-per-day", type=int, default=2, help="data files per day (2)")
    defaults = Rates()
    for name, help_text in _RATE_HELP.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_rate,
            default=getattr(defaults, name),
            help=help_text,
        )
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    parser.add_argument(
        "--skip-dates",
        type=_skip_dates,
        default=None,
        help="dates that get no folder: comma-separated YYYY-MM-DD, 'none', or 'auto' "
        "(default: with defects, the 9th day from --history-start and every 30th after)",
    )
    parser.add_argument(
        "--history-start",
        type=parse_date,
        default=None,
        help="first date ever generated with this seed; refunds and retries may point back "
        "to it (default: --start)",
    )
    return parser


def _skip_dates(value: str) -> tuple[dt.date, ...] | None:
    """``auto`` (None), ``none`` (no missing day) or comma-separated dates, for argparse."""
    if value == "auto":
        return None
    if value == "none":
        return ()
    return tuple(parse_date(part.strip()) for part in value.split(",") if part.strip())


def _rate(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r}: expected e.g. 0.01") from None
