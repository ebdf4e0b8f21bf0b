"""Pure transforms from bronze rows to silver purchases, quarantine and changes.

Nothing here runs a Spark action; build_silver reads, calls these, and writes. The rules
(reason codes, their order, the duplicate winner, rounding) are described in
docs/SILVER.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from spark_jobs import reasons
from spark_jobs.catalog import (
    FX_RATE,
    LANDING_FIELDS,
    MONEY,
    SILVER_PURCHASES_SCHEMA,
    SILVER_QUARANTINE_SCHEMA,
)
from spark_jobs.transforms.fx import REPORTING_CURRENCY

EVENT_TYPES = ("purchase", "refund")
REQUIRED_FIELDS = tuple(name for name in LANDING_FIELDS if name != "category")
# Identifiers are meaningless when blank, so "" counts as missing for them; a blank
# event type, time, quantity, price or currency is an invalid value of that field.
IDENTIFIER_FIELDS = ("event_id", "order_id", "user_id", "sku")
# ISO-8601 with seconds and an explicit offset (Z or +hh:mm): a local time without an
# offset cannot be placed on the UTC time line.
EVENT_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
QUANTITY_PATTERN = r"^[0-9]{1,9}$"
# A plain non-negative decimal: no sign, exponent, thousands or comma separator, and no
# more decimals than silver stores (4), so no amount is silently rounded on the way in.
PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,4})?$"
# quantity * unit_price of one line, in its own currency, must stay below this (10^12):
# beyond it the record is not a credible purchase and USD amounts could overflow MONEY.
MAX_LINE_AMOUNT = 10**12
DETAIL_VALUE_CHARS = 100

# Record limits: each is defined here once. docs/DATA_CONTRACT.md quotes them and the
# silver suite's invariants use the same numbers (tests/quality/test_record_rules.py
# checks both), so a limit cannot drift between the rules, the gate and the doc.
#
# A landed line longer than this is not a purchase record (a dump, a runaway writer):
# bronze keeps its first TRUNCATED_LINE_KEPT_CHARS characters plus a mark with its
# length and SHA-256, so the row stays small and nothing is lost without a trace.
MAX_LINE_CHARS = 65_536
TRUNCATED_LINE_KEPT_CHARS = 1_000
# printf-style: the line's length in characters, then the SHA-256 of its bytes.
TRUNCATED_LINE_MARK = " [ingest_bronze: truncated line of %d characters, sha256 %s]"
TRUNCATED_LINE_PATTERN = (
    r" \[ingest_bronze: truncated line of \d+ characters, sha256 [0-9a-f]{64}\]$"
)
# The one bronze row of a landing file (or what is left of it) that could not be read.
UNREADABLE_FILE_MARK = "[ingest_bronze: unreadable landing file: %s]"
UNREADABLE_FILE_PATTERN = r"^\[ingest_bronze: unreadable landing file: (.*)\]$"
# Identifiers are keys and file-name-like values downstream: ASCII letters, digits and a
# few separators, at most MAX_IDENTIFIER_CHARS. No spaces, quotes, markup (< >), JSON
# ({ [) or control characters, so a nested object or an HTML fragment is rejected.
MAX_IDENTIFIER_CHARS = 128
IDENTIFIER_CHARACTERS = "A-Za-z0-9._:@/#+=~-"
IDENTIFIER_PATTERN = rf"^[{IDENTIFIER_CHARACTERS}]{{1,{MAX_IDENTIFIER_CHARS}}}$"
_IDENTIFIER_CHARACTERS_TEXT = "A-Z a-z 0-9 " + " ".join(IDENTIFIER_CHARACTERS[len("A-Za-z0-9") :])
# The most items one purchase line credibly has; more is a typo or a test order.
MAX_QUANTITY = 10_000
# The largest USD amount (absolute, refunds too) one line credibly has.
MAX_LINE_AMOUNT_USD = 1_000_000
# A landing field named twice in one object (the last value would win silently). The
# look-behind skips a key-like text escaped inside a string value.
_LANDING_KEY_PATTERN = r'(?<!\\)"(' + "|".join(LANDING_FIELDS) + r')"\s*:'

SILVER_COLUMNS = [f.name for f in SILVER_PURCHASES_SCHEMA.fields]
QUARANTINE_COLUMNS = [f.name for f in SILVER_QUARANTINE_SCHEMA.fields]
CHANGES_KEY = ["_landing_date", "event_date", "user_id"]
# The deterministic winner among records of one event: smallest of these (ARCHITECTURE.md).
WINNER_ORDER = ["_landing_date", "_source_file", "_raw"]


def parse_event_time(text: Column) -> Column:
    """The UTC instant of an ISO-8601 time with offset; null when not one (or impossible)."""
    return F.when(text.rlike(EVENT_TIME_PATTERN), text.try_cast("timestamp"))


def utc_offset_minutes(text: Column) -> Column:
    """The offset an ISO-8601 time was written in, in minutes east of UTC (Z is 0)."""
    offset = F.regexp_extract(text, r"(Z|[+-]\d{2}:\d{2})$", 1)
    hours = F.substring(offset, 2, 2).try_cast("int")
    minutes = hours * 60 + F.substring(offset, 5, 2).try_cast("int")
    return (
        F.when(offset == "Z", F.lit(0))
        .when(offset.startswith("-"), -minutes)
        .otherwise(minutes)
        .cast("int")
    )


def utc_date(instant: Column) -> Column:
    """The UTC calendar date of an instant, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_micros(instant) / 86_400_000_000).cast("int"))


def end_of_landing_day(landing_date: Column) -> Column:
    """00:00 UTC after the landing day: events at or after it are in the landing's future."""
    return F.timestamp_seconds(F.unix_date(F.date_add(landing_date, 1)).cast("long") * 86_400)


def touched_event_dates(bronze: DataFrame) -> DataFrame:
    """Distinct UTC event dates bronze rows could put into silver (one ``event_date`` column).

    A cheap superset of the dates valid rows land on: only the event time is checked.
    """
    instant = parse_event_time(F.col("event_time"))
    return (
        bronze.where(~F.col("_is_malformed"))
        .select(instant.alias("instant"), "_landing_date")
        .where(F.col("instant") < end_of_landing_day(F.col("_landing_date")))
        .select(utc_date(F.col("instant")).alias("event_date"))
        .distinct()
    )


def _quoted(column: str) -> Column:
    return F.concat(F.lit("'"), F.substring(F.col(column), 1, DETAIL_VALUE_CHARS), F.lit("'"))


def _detail(*parts: str | Column) -> Column:
    return F.concat(*[F.lit(p) if isinstance(p, str) else p for p in parts])


def with_repeated_keys(frame: DataFrame) -> DataFrame:
    """``frame`` plus ``_repeated_keys``: the keys its ``_raw`` object names more than once.

    The keys are extracted once, into the column ``_landing_keys``: the extraction named
    inside the lambda would run the regex over the whole line again for every element
    (bench/landing_keys.py measures the difference).
    """
    landing_keys = F.col("_landing_keys")
    return frame.withColumn(
        "_landing_keys", F.regexp_extract_all(F.col("_raw"), F.lit(_LANDING_KEY_PATTERN), 1)
    ).withColumn(
        "_repeated_keys",
        F.filter(landing_keys, lambda key, i: F.array_position(landing_keys, key) <= i),
    )


def validate(
    bronze: DataFrame, currencies: Sequence[str], daily_rates: DataFrame, max_staleness_days: int
) -> DataFrame:
    """Bronze rows with their typed values, USD amount, and ``reason``/``reason_detail``.

    ``reason`` is null for a valid record, else the first failing check in
    ``reasons.REASONS`` order. ``daily_rates`` is fx.daily_fx_rates (broadcast: small);
    event dates are UTC dates, and the FX rate is the one of the event's UTC date; USD,
    the reporting currency, is 1 on any date, with the event date as its rate date.
    """
    instant = parse_event_time(F.col("event_time"))
    quantity = F.when(F.col("quantity").rlike(QUANTITY_PATTERN), F.col("quantity").cast("int"))
    price = F.when(
        F.col("unit_price").rlike(PRICE_PATTERN), F.col("unit_price").cast("decimal(14,4)")
    )
    typed = bronze.select(
        "*",
        instant.alias("_event_time"),
        utc_date(instant).alias("_event_date"),
        quantity.alias("_quantity"),
        price.alias("_unit_price"),
    )
    rates = F.broadcast(
        daily_rates.select(
            F.col("fx_date").alias("_fx_date"),
            F.col("currency").alias("_fx_currency"),
            F.col("fx_rate_to_usd").alias("_fx_rate"),
            F.col("fx_rate_date").alias("_fx_rate_date"),
        )
    )
    in_reporting_currency = F.col("currency") == REPORTING_CURRENCY
    joined = typed.join(
        rates,
        (F.col("_event_date") == F.col("_fx_date")) & (F.col("currency") == F.col("_fx_currency")),
        "left",
    ).withColumns(
        {  # USD is worth 1 USD on any day, dated the event's own day: it needs no table row
            "_fx_rate": F.when(in_reporting_currency, F.lit(1).cast(FX_RATE)).otherwise(
                F.col("_fx_rate")
            ),
            "_fx_rate_date": F.when(in_reporting_currency, F.col("_event_date")).otherwise(
                F.col("_fx_rate_date")
            ),
        }
    )
    line_amount = F.col("_quantity").cast("decimal(10,0)") * F.col("_unit_price")
    # Exact decimal product (scale 12), rounded once; try_cast because the amount is
    # computed for every row, including the quarantined ones beyond MAX_LINE_AMOUNT.
    amount = F.round(line_amount.try_cast("decimal(16,4)") * F.col("_fx_rate"), 4).cast(MONEY)
    joined = with_repeated_keys(joined)
    repeated_keys = F.col("_repeated_keys")
    bad_identifier = F.coalesce(
        *[
            F.when(
                ~F.col(name).rlike(IDENTIFIER_PATTERN),
                _detail(
                    f"{name} ",
                    _quoted(name),
                    f" is not 1 to {MAX_IDENTIFIER_CHARS} of the characters "
                    + _IDENTIFIER_CHARACTERS_TEXT,
                ),
            )
            for name in IDENTIFIER_FIELDS
        ]
    )

    def missing(name: str) -> Column:
        if name in IDENTIFIER_FIELDS:
            return F.col(name).isNull() | (F.trim(F.col(name)) == "")
        return F.col(name).isNull()

    missing_detail = F.coalesce(
        *[
            F.when(missing(name), F.lit(f"field {name} is missing, null or blank"))
            for name in REQUIRED_FIELDS
        ]
    )
    checks: list[tuple[str, Column, Column]] = [
        (
            reasons.UNREADABLE_FILE,
            F.col("_is_malformed") & F.col("_raw").rlike(UNREADABLE_FILE_PATTERN),
            _detail(
                "landing file ",
                F.col("_source_file"),
                " cannot be read: ",
                F.regexp_extract(F.col("_raw"), UNREADABLE_FILE_PATTERN, 1),
                "; the lines before the damage, if any, are kept: land the file again",
            ),
        ),
        (
            reasons.LINE_TOO_LONG,
            F.col("_is_malformed") & F.col("_raw").rlike(TRUNCATED_LINE_PATTERN),
            _detail(
                f"line is longer than {MAX_LINE_CHARS} characters: ",
                F.regexp_extract(F.col("_raw"), r"truncated line of \d+ characters", 0),
                ", starting ",
                _quoted("_raw"),
            ),
        ),
        (
            reasons.INVALID_ENCODING,
            ~F.is_valid_utf8(F.col("_raw")),
            _detail("line is not UTF-8 text: ", _quoted("_raw")),
        ),
        (
            reasons.MALFORMED_JSON,
            F.col("_is_malformed"),
            _detail("line is not one JSON object: ", _quoted("_raw")),
        ),
        (
            reasons.DUPLICATE_FIELD,
            F.size(repeated_keys) > 0,
            _detail(
                "field(s) named more than once in the object: ",
                F.array_join(F.array_distinct(repeated_keys), ", "),
                " (which value counts would be a guess)",
            ),
        ),
        (
            reasons.MISSING_FIELD,
            F.greatest(*[missing(name) for name in REQUIRED_FIELDS]),
            missing_detail,
        ),
        (
            reasons.INVALID_IDENTIFIER,
            bad_identifier.isNotNull(),
            bad_identifier,
        ),
        (
            reasons.INVALID_EVENT_TYPE,
            ~F.col("event_type").isin(*EVENT_TYPES),
            _detail("event_type ", _quoted("event_type"), " is not 'purchase' or 'refund'"),
        ),
        (
            reasons.INVALID_EVENT_TIME,
            F.col("_event_time").isNull(),
            _detail(
                "event_time ",
                _quoted("event_time"),
                " is not an ISO-8601 time with a UTC offset (e.g. 2026-03-01T14:22:05+01:00)",
            ),
        ),
        (
            reasons.FUTURE_EVENT_TIME,
            F.col("_event_time") >= end_of_landing_day(F.col("_landing_date")),
            _detail(
                "event_time ",
                _quoted("event_time"),
                " is after the end of landing date ",
                F.col("_landing_date").cast("string"),
                " (UTC)",
            ),
        ),
        (
            reasons.INVALID_QUANTITY,
            F.col("_quantity").isNull() | (F.col("_quantity") <= 0),
            _detail("quantity ", _quoted("quantity"), " is not a whole number > 0"),
        ),
        (
            reasons.IMPLAUSIBLE_QUANTITY,
            F.col("_quantity") > F.lit(MAX_QUANTITY),
            _detail(
                "quantity ",
                _quoted("quantity"),
                f" is more than the {MAX_QUANTITY} items one line credibly has",
            ),
        ),
        (
            reasons.INVALID_PRICE,
            F.col("_unit_price").isNull(),
            _detail(
                "unit_price ",
                _quoted("unit_price"),
                ' is not a decimal >= 0 with at most 4 decimals (e.g. "19.99")',
            ),
        ),
        (
            reasons.INVALID_PRICE,
            line_amount >= F.lit(MAX_LINE_AMOUNT),
            _detail(
                "quantity ",
                _quoted("quantity"),
                " * unit_price ",
                _quoted("unit_price"),
                " is 10^12 or more, not a credible purchase line",
            ),
        ),
        (
            reasons.UNKNOWN_CURRENCY,
            ~F.col("currency").isin(*currencies),
            _detail(
                "currency ", _quoted("currency"), " is not in include/reference/currencies.csv"
            ),
        ),
        (
            reasons.NO_FX_RATE,
            F.col("_fx_rate").isNull(),
            _detail(
                "no rate_to_usd for currency ",
                _quoted("currency"),
                " on ",
                F.col("_event_date").cast("string"),
                f" or the {max_staleness_days} day(s) before in include/reference/fx_rates.csv"
                " (the ECB did not quote it then: see docs/REFERENCE_DATA.md)",
            ),
        ),
        (
            reasons.IMPLAUSIBLE_AMOUNT,
            amount.isNull() | (F.abs(amount) > F.lit(MAX_LINE_AMOUNT_USD)),
            _detail(
                "quantity ",
                _quoted("quantity"),
                " * unit_price ",
                _quoted("unit_price"),
                " ",
                _quoted("currency"),
                " is ",
                F.coalesce(amount.cast("string"), F.lit("too much")),
                f" USD, more than the {MAX_LINE_AMOUNT_USD} USD one line credibly has",
            ),
        ),
    ]
    reason: Column = F.lit(None).cast("string")
    detail: Column = F.lit(None).cast("string")
    for code, failed, text in reversed(checks):
        reason = F.when(failed, F.lit(code)).otherwise(reason)
        detail = F.when(failed, text).otherwise(detail)
    return joined.select(
        "*",
        reason.alias("reason"),
        detail.alias("reason_detail"),
        F.when(F.col("event_type") == "refund", -amount).otherwise(amount).alias("_amount_usd"),
    ).drop("_landing_keys", "_repeated_keys")


def valid_purchases(validated: DataFrame) -> DataFrame:
    """Typed silver rows (SILVER_PURCHASES_SCHEMA columns, plus ``_raw``) of valid records."""
    return validated.where(F.col("reason").isNull()).select(
        "event_id",
        "order_id",
        "user_id",
        "event_type",
        F.col("_event_time").alias("event_time"),
        F.col("_event_date").alias("event_date"),
        utc_offset_minutes(F.col("event_time")).alias("event_utc_offset_minutes"),
        "sku",
        "category",
        F.col("_quantity").alias("quantity"),
        F.col("_unit_price").cast(MONEY).alias("unit_price"),
        "currency",
        F.col("_fx_rate").cast(FX_RATE).alias("fx_rate_to_usd"),
        F.col("_fx_rate_date").alias("fx_rate_date"),
        F.col("_amount_usd").alias("amount_usd"),
        "_source_file",
        "_landing_date",
        "_ingested_at",
        "_raw",
    )


def quarantined(validated: DataFrame) -> DataFrame:
    """silver.quarantine rows: every rejected record with its reason and source."""
    return validated.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)


def pick_winners(candidates: DataFrame, existing: DataFrame) -> DataFrame:
    """This run's rows that win their event (SILVER_PURCHASES_SCHEMA columns).

    ``candidates`` are the run's valid rows (with ``_raw``); ``existing`` are silver rows
    of the same event dates from other landing dates. Among the records of one event
    (event_date, event_id) the winner has the smallest (_landing_date, _source_file,
    _raw): the earliest delivery, whichever run saw it first. Records with equal keys are
    equal rows, so ties are harmless. A retry repeats the whole record, hence its
    event_date, so duplicates are looked for within an event date only.
    """
    pool = candidates.select(*SILVER_COLUMNS, "_raw", F.lit(True).alias("_from_run")).unionByName(
        existing.select(
            *SILVER_COLUMNS,
            F.lit(None).cast("string").alias("_raw"),
            F.lit(False).alias("_from_run"),
        )
    )
    order = Window.partitionBy("event_date", "event_id").orderBy(*WINNER_ORDER)
    return (
        pool.withColumn("_rank", F.row_number().over(order))
        .where((F.col("_rank") == 1) & F.col("_from_run"))
        .select(*SILVER_COLUMNS)
    )


def rebuilt_partitions(run_rows: DataFrame, others: DataFrame) -> DataFrame:
    """The new content of the event-date partitions a run touches.

    ``run_rows`` are the run's winners (pick_winners), ``others`` the rows other landing
    dates hold in those partitions now; an other row whose event a run row won leaves.
    """
    kept = others.join(
        run_rows.select("event_date", "event_id"), ["event_date", "event_id"], "left_anti"
    )
    return kept.select(*SILVER_COLUMNS).unionByName(run_rows.select(*SILVER_COLUMNS))


def silver_changes(landed: DataFrame, previous: DataFrame) -> DataFrame:
    """silver.changes rows: silver rows per (landing date, event date, user) after the run.

    ``landed`` are the run's winners (pick_winners), ``previous`` the changes
    those landing dates recorded before; a pair they no longer have keeps a row with 0
    rows, so downstream rebuilds the pair whose rows were removed. When another landing
    date of the run now holds that user's rows of the event date (an earlier delivery
    won them), the pair goes instead: the run's changes already make downstream rebuild
    that event date, and an in-order pass never recorded the pair at all.
    """
    current = landed.groupBy(*CHANGES_KEY).agg(F.count(F.lit(1)).alias("rows"))
    held = landed.select("event_date", "user_id").distinct()
    gone = (
        previous.select(*CHANGES_KEY)
        .join(current.select(*CHANGES_KEY), CHANGES_KEY, "left_anti")
        .join(held, ["event_date", "user_id"], "left_anti")
        .select(*CHANGES_KEY, F.lit(0).cast("long").alias("rows"))
    )
    return current.select(*CHANGES_KEY, F.col("rows").cast("long").alias("rows")).unionByName(gone)


def other_landings_changes(kept_others: DataFrame, previous_others: DataFrame) -> DataFrame:
    """silver.changes rows of the other landing dates on the partitions a run rebuilt.

    ``kept_others`` are their rows that stay (rebuilt_partitions minus the run's),
    ``previous_others`` the changes they recorded on those event dates. A pair whose
    records the run took over (an earlier delivery of the same events) goes, as if that
    landing had never held them; a pair already at 0 rows (its own rerun removed them,
    downstream may not have rebuilt it yet) stays at 0.
    """
    current = kept_others.groupBy(*CHANGES_KEY).agg(F.count(F.lit(1)).alias("rows"))
    waiting = previous_others.where(F.col("rows") == 0).select(*CHANGES_KEY)
    return waiting.join(current, CHANGES_KEY, "full").select(
        *CHANGES_KEY, F.coalesce(F.col("rows"), F.lit(0)).cast("long").alias("rows")
    )
