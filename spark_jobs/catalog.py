"""The table catalog: names, paths, schemas and partition columns of every table.

Nothing else in the product builds a table path by hand; import from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_jobs.cli import DateRange
from spark_jobs.names import child_path

MONEY = DecimalType(18, 4)
FX_RATE = DecimalType(18, 8)


def _fields(*specs: tuple[str, DataType, bool]) -> StructType:
    return StructType([StructField(name, dtype, nullable) for name, dtype, nullable in specs])


# The landing contract (docs/DATA_CONTRACT.md): every field is read as the string it was
# landed as, so a bad value survives to bronze and reaches quarantine with its reason.
LANDING_FIELDS = (
    "event_id",
    "order_id",
    "user_id",
    "event_type",
    "event_time",
    "sku",
    "category",
    "quantity",
    "unit_price",
    "currency",
)
LANDING_SCHEMA = _fields(*[(name, StringType(), True) for name in LANDING_FIELDS])

BRONZE_PURCHASES_SCHEMA = _fields(
    *[(name, StringType(), True) for name in LANDING_FIELDS],
    ("_raw", StringType(), False),  # the line exactly as landed
    ("_is_malformed", BooleanType(), False),  # the line is not a JSON object
    ("_source_file", StringType(), False),
    ("_ingested_at", TimestampType(), False),  # end of the landing day's data interval
    ("_landing_date", DateType(), False),
)

SILVER_PURCHASES_SCHEMA = _fields(
    ("event_id", StringType(), False),
    ("order_id", StringType(), False),
    ("user_id", StringType(), False),
    ("event_type", StringType(), False),  # purchase | refund
    ("event_time", TimestampType(), False),  # UTC instant
    ("event_date", DateType(), False),  # UTC date of event_time
    ("event_utc_offset_minutes", IntegerType(), False),  # offset the order system sent
    ("sku", StringType(), False),
    ("category", StringType(), True),
    ("quantity", IntegerType(), False),
    ("unit_price", MONEY, False),  # in `currency`
    ("currency", StringType(), False),
    ("fx_rate_to_usd", FX_RATE, False),
    ("fx_rate_date", DateType(), False),  # the reference day the rate came from
    ("amount_usd", MONEY, False),  # quantity * unit_price * rate; negative for refunds
    ("_source_file", StringType(), False),
    ("_landing_date", DateType(), False),
    ("_ingested_at", TimestampType(), False),
)

SILVER_QUARANTINE_SCHEMA = _fields(
    ("reason", StringType(), False),  # a code from spark_jobs.reasons
    ("reason_detail", StringType(), False),  # which field / value, for people
    ("event_id", StringType(), True),
    ("user_id", StringType(), True),
    ("_raw", StringType(), False),
    ("_source_file", StringType(), False),
    ("_landing_date", DateType(), False),
    ("_ingested_at", TimestampType(), False),
)

# Which (user, event_date) pairs each landing date touched in silver: drives the
# incremental rebuild of gold. Rewritten per landing date with replaceWhere.
SILVER_CHANGES_SCHEMA = _fields(
    ("_landing_date", DateType(), False),
    ("event_date", DateType(), False),
    ("user_id", StringType(), False),
    ("rows", LongType(), False),
)

GOLD_USER_DAILY_SCHEMA = _fields(
    ("user_id", StringType(), False),
    ("event_date", DateType(), False),
    ("orders", LongType(), False),  # distinct purchase order_ids
    ("items", LongType(), False),  # purchased quantity
    ("gross_usd", MONEY, False),  # purchases
    ("refunds_usd", MONEY, False),  # refunds, as a positive amount
    ("net_usd", MONEY, False),  # gross - refunds
    ("refund_count", LongType(), False),
    ("distinct_categories", LongType(), False),
    ("first_event_time", TimestampType(), False),
    ("last_event_time", TimestampType(), False),
)

FEATURE_WINDOWS = (7, 30, 90)


def _window_fields(days: int) -> list[tuple[str, DataType, bool]]:
    return [
        (f"orders_{days}d", LongType(), False),
        (f"items_{days}d", LongType(), False),
        (f"net_usd_{days}d", MONEY, False),
        (f"refunds_usd_{days}d", MONEY, False),
        (f"active_days_{days}d", LongType(), False),
        (f"aov_usd_{days}d", DoubleType(), True),  # null when no orders in the window
    ]


FEATURE_KEY = ("user_id", "as_of_date")

GOLD_USER_FEATURES_SCHEMA = _fields(
    ("user_id", StringType(), False),
    ("as_of_date", DateType(), False),
    *[f for w in FEATURE_WINDOWS for f in _window_fields(w)],
    ("first_purchase_date", DateType(), False),
    ("last_purchase_date", DateType(), False),
    ("lifetime_orders", LongType(), False),
    ("lifetime_net_usd", MONEY, False),
    ("days_since_last_purchase", IntegerType(), False),
    ("top_category_90d", StringType(), True),
    ("frequency", IntegerType(), False),
    ("recency", IntegerType(), False),
    ("T", IntegerType(), False),
    ("monetary_value", DoubleType(), False),
    ("feature_ts", TimestampType(), False),  # as_of_date + 1 day, 00:00 UTC
    ("available_at", TimestampType(), False),  # when this version of the row became known
)


@dataclass(frozen=True)
class Table:
    """A Delta table of the lakehouse: where it lives and what it holds."""

    name: str  # layer.table, e.g. "silver.purchases"
    relative_path: str
    schema: StructType
    partition_by: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    # For the gate's day-over-day row-count band: the column whose value says which day
    # a row belongs to (staged rows are compared with the published rows of the day
    # before the run). None: the table has no such band.
    row_count_day_column: str | None = None
    # True when a run's staged rows are whole event days it recomputed, so the band
    # scales with the days staged rather than the run's landing days.
    recomputed_per_day: bool = False
    # For a quarantine table: the table holding the records its stage kept. The gate's
    # quarantine limits are shares of both tables' rows staged by the run.
    quarantine_of: Table | None = None
    # Numeric columns the gate compares with the published rows of the trailing weeks
    # (population stability index, a warn-level expectation per column). Needs
    # ``row_count_day_column`` to find the days.
    drift_columns: tuple[str, ...] = ()

    def path(self, root: str) -> str:
        """Absolute location of the table under a lakehouse root (folder or s3a:// URI)."""
        return join_path(root, self.relative_path)

    @property
    def suite_name(self) -> str:
        """Name of the Great Expectations suite that gates this table."""
        return self.name.replace(".", "_")


def join_path(root: str, *parts: str) -> str:
    """Join path parts onto a root that may be a local folder or an object-store URI."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


BRONZE_PURCHASES = Table(
    "bronze.purchases",
    "bronze/purchases",
    BRONZE_PURCHASES_SCHEMA,
    ("_landing_date",),
    row_count_day_column="_landing_date",
)
# One row per landing date bronze ingested, files or not: tells "ingested, nothing
# landed" apart from "never ingested" (a landing date with no rows leaves no trace in
# bronze itself). Rewritten per landing date with replaceWhere.
BRONZE_LANDING_LOG_SCHEMA = _fields(
    ("_landing_date", DateType(), False),
    ("files", IntegerType(), False),  # landing files found, empty ones included
    ("_ingested_at", TimestampType(), False),
)
BRONZE_LANDING_LOG = Table(
    "bronze.landing_log",
    "bronze/_landing_log",
    BRONZE_LANDING_LOG_SCHEMA,
    ("_landing_date",),
    ("_landing_date",),
)
SILVER_PURCHASES = Table(
    "silver.purchases",
    "silver/purchases",
    SILVER_PURCHASES_SCHEMA,
    ("event_date",),
    ("event_id",),
    row_count_day_column="_landing_date",
)
SILVER_QUARANTINE = Table(
    "silver.quarantine",
    "silver/quarantine",
    SILVER_QUARANTINE_SCHEMA,
    ("_landing_date",),
    quarantine_of=SILVER_PURCHASES,
)
SILVER_CHANGES = Table(
    "silver.changes",
    "silver/_changes",
    SILVER_CHANGES_SCHEMA,
    ("_landing_date",),
    ("_landing_date", "event_date", "user_id"),
)
GOLD_USER_DAILY = Table(
    "gold.user_daily",
    "gold/user_daily",
    GOLD_USER_DAILY_SCHEMA,
    ("event_date",),
    ("user_id", "event_date"),
    row_count_day_column="event_date",
    # A late row stages every event day it touches, rebuilt whole.
    recomputed_per_day=True,
)
GOLD_USER_FEATURES = Table(
    "gold.user_features",
    "gold/user_features",
    GOLD_USER_FEATURES_SCHEMA,
    ("as_of_date",),
    FEATURE_KEY,
    # A late row stages only the changed users' snapshots of earlier days, so the band
    # stays per landing day.
    row_count_day_column="as_of_date",
    drift_columns=(
        "orders_30d",
        "items_30d",
        "net_usd_30d",
        "aov_usd_30d",
        "active_days_30d",
        "days_since_last_purchase",
    ),
)
# Every version of every snapshot, including superseded ones (late-data corrections).
GOLD_USER_FEATURES_HISTORY = Table(
    "gold.user_features_history",
    "gold/user_features_history",
    GOLD_USER_FEATURES_SCHEMA,
    ("as_of_date",),
    (*FEATURE_KEY, "available_at"),
)


# Internal gold state (not for consumers). What each landing date added to each
# (user, event_date): "known at L" daily values are merges of the slices landed <= L,
# so a backfill sees exactly what each daily run saw.
CATEGORY_ITEMS = ArrayType(
    StructType(
        [StructField("category", StringType(), False), StructField("items", LongType(), False)]
    ),
    False,
)
GOLD_USER_DAILY_BY_LANDING_SCHEMA = _fields(
    ("user_id", StringType(), False),
    ("event_date", DateType(), False),
    ("_landing_date", DateType(), False),
    ("purchase_order_ids", ArrayType(StringType(), False), False),  # distinct, sorted
    ("items", LongType(), False),
    ("gross_usd", MONEY, False),
    ("refunds_usd", MONEY, False),  # positive
    ("refund_count", LongType(), False),
    ("category_items", CATEGORY_ITEMS, False),  # purchased items per non-null category
    ("first_event_time", TimestampType(), False),
    ("last_event_time", TimestampType(), False),
)
GOLD_USER_DAILY_BY_LANDING = Table(
    "gold.user_daily_by_landing",
    "gold/_user_daily_by_landing",
    GOLD_USER_DAILY_BY_LANDING_SCHEMA,
    ("_landing_date",),
    ("user_id", "event_date", "_landing_date"),
)
# Lifetime totals of every user with any event on or before as_of_date, one version per
# (user, as_of_date, available_at) like the features history: the previous snapshot a
# daily features run starts from instead of rescanning history.
GOLD_USER_FEATURE_STATE_SCHEMA = _fields(
    ("user_id", StringType(), False),
    ("as_of_date", DateType(), False),
    ("available_at", TimestampType(), False),
    ("first_purchase_date", DateType(), True),  # null: refunds only so far
    ("last_purchase_date", DateType(), True),
    ("lifetime_orders", LongType(), False),
    ("lifetime_net_usd", MONEY, False),
    ("purchase_days", LongType(), False),
    ("purchase_days_net_usd", MONEY, False),  # net of the purchase days, first one included
    ("first_purchase_day_net_usd", MONEY, True),
)
GOLD_USER_FEATURE_STATE = Table(
    "gold.user_feature_state",
    "gold/_user_feature_state",
    GOLD_USER_FEATURE_STATE_SCHEMA,
    ("as_of_date",),
    (*FEATURE_KEY, "available_at"),
)
# The landing dates build_gold has published, one row each: gold reflects exactly those,
# whatever else silver already holds.
GOLD_DAILY_LANDINGS = Table(
    "gold.daily_landings",
    "gold/_daily_landings",
    _fields(("_landing_date", DateType(), False)),
    (),
    ("_landing_date",),
)
# The landing dates build_features has published, one row each. A run of an earlier
# landing date recomputes every later one listed here (their versions build on its state),
# including days that landed nothing and so left no feature rows to tell by.
GOLD_FEATURE_LANDINGS_SCHEMA = _fields(("_landing_date", DateType(), False))
GOLD_FEATURE_LANDINGS = Table(
    "gold.feature_landings",
    "gold/_feature_landings",
    GOLD_FEATURE_LANDINGS_SCHEMA,
    (),
    ("_landing_date",),
)

ALL_TABLES = (
    BRONZE_PURCHASES,
    BRONZE_LANDING_LOG,
    SILVER_PURCHASES,
    SILVER_QUARANTINE,
    SILVER_CHANGES,
    GOLD_USER_DAILY,
    GOLD_USER_FEATURES,
    GOLD_USER_FEATURES_HISTORY,
    GOLD_USER_DAILY_BY_LANDING,
    GOLD_USER_FEATURE_STATE,
    GOLD_DAILY_LANDINGS,
    GOLD_FEATURE_LANDINGS,
)
TABLES_BY_NAME = {t.name: t for t in ALL_TABLES}

# One row per stage run, written by the jobs themselves (spark_jobs.ops.metrics): what
# operators read to see why a run was late, skewed or drifting. Not a data table: no
# gate guards it, no stage reads it, and ALL_TABLES leaves it out (a rerun adds rows
# here while the data tables converge to the same rows).
OPS_STAGE_RUNS_SCHEMA = _fields(
    ("stage", StringType(), False),  # bronze, silver, gold_daily, gold_features
    ("job", StringType(), False),
    ("step", StringType(), False),  # all, build, publish
    ("run_key", StringType(), False),
    ("start_date", DateType(), False),  # the run's first logical (landing) date
    ("end_date", DateType(), False),
    ("dag_id", StringType(), True),  # null when run by hand
    ("dag_run_id", StringType(), True),
    ("task_id", StringType(), True),
    ("attempt", IntegerType(), False),  # Airflow's try number; 1 by hand
    ("status", StringType(), False),  # published, built, gate_failed, failed
    ("error", StringType(), True),  # the first line of what stopped a failed run
    ("started_at", TimestampType(), False),
    ("ended_at", TimestampType(), False),
    ("duration_s", DoubleType(), False),
    ("build_s", DoubleType(), True),
    ("gate_s", DoubleType(), True),
    ("publish_s", DoubleType(), True),
    ("rows_in", LongType(), True),  # what the stage read (bronze: lines landed)
    ("rows_out", LongType(), True),  # rows of the stage's main table published
    ("rows_quarantined", LongType(), True),
    ("rows_duplicate", LongType(), True),
    ("bytes_written", LongType(), True),  # over every table the stage committed
    ("files_written", LongType(), True),
    ("input_versions", MapType(StringType(), LongType()), True),
    ("output_versions", MapType(StringType(), LongType()), True),
    # The main output's rows per partition of a user_id hash shuffle with the session's
    # spark.sql.shuffle.partitions: the distribution every per-user aggregation sees.
    ("shuffle_partitions", IntegerType(), True),
    ("partition_rows_max", LongType(), True),
    ("partition_rows_median", DoubleType(), True),
    ("skew_ratio", DoubleType(), True),  # max / median
    ("hot_key", StringType(), True),  # the user_id with the most rows
    ("hot_key_rows", LongType(), True),
    # Logical end of the run's last day (00:00 UTC after it) minus the newest event
    # time published: how stale the freshest data is when the day closes.
    ("freshness_lag_s", DoubleType(), True),
    ("gate_passed", BooleanType(), True),  # null: the step did not gate
    ("gate_failed_expectations", IntegerType(), True),
    ("gate_warnings", IntegerType(), True),
    ("quarantine_by_reason", MapType(StringType(), LongType()), True),
    # Published rows by days between event and landing: "0", "1", "2-3", "4-7", "8+".
    ("late_by_days", MapType(StringType(), LongType()), True),
    # The main table's staged rows against the row-count band: log(rows / expected) over
    # log(fail ratio), so 0 is the expected size and -1 / +1 the edges of the fail band.
    # Null without a baseline.
    ("row_band_position", DoubleType(), True),
    # Population stability index of each drift column of the staged days against the
    # trailing weeks' published rows (gold.user_features); null without a reference.
    ("feature_psi", MapType(StringType(), DoubleType()), True),
)
OPS_STAGE_RUNS = Table("ops.stage_runs", "ops/stage_runs", OPS_STAGE_RUNS_SCHEMA)


LANDING_SUFFIXES = (".jsonl", ".jsonl.gz")


def is_landing_file(name: str) -> bool:
    """True for a file name ingest reads: ``*.jsonl(.gz)``, not hidden.

    Names starting with ``.`` or ``_`` are hidden: upload tools write such markers and
    partial files before the real one appears.
    """
    return name.endswith(LANDING_SUFFIXES) and not name.startswith((".", "_"))


def landing_path(root: str) -> str:
    """Folder of raw purchase files: ``<root>/landing/purchases/dt=YYYY-MM-DD/``."""
    return join_path(root, "landing", "purchases")


def landing_day_path(root: str, landing_date: object) -> str:
    """Folder of one landing date's files."""
    return join_path(landing_path(root), f"dt={landing_date}")


def training_path(root: str, name: str) -> str:
    """Location of a training set built by build_training_set.

    ``name`` must pass the safe-name rule (spark_jobs.names) and stay under
    ``<root>/training``: an UnsafeNameError otherwise, before anything is written.
    """
    return child_path(join_path(root, "training"), name, "training set name")


def staging_root(root: str) -> str:
    """Folder of every run's staged rows (``_staging/<table path>/<run key>``)."""
    return join_path(root, "_staging")


def publishing_root(root: str) -> str:
    """Folder of the intents of multi-table publishes in progress (``_publishing``)."""
    return join_path(root, "_publishing")


def staging_path(root: str, table: Table, run_key: str) -> str:
    """Where a stage writes its output before the gate validates and publishes it.

    ``run_key`` (``2026-03-01_2026-03-07``, ``all``, ``min_2026-03-07``...) must pass
    the safe-name rule and stay under the table's staging folder.
    """
    return child_path(join_path(staging_root(root), table.relative_path), run_key, "run key")


def reports_path(root: str) -> str:
    """Folder of validation reports (GX Data Docs and JSON results)."""
    return join_path(root, "_reports")


def reference_path(name: str) -> str:
    """A reference-data file shipped in include/reference/."""
    from spark_jobs.config import INCLUDE_DIR

    return str(INCLUDE_DIR / "reference" / name)


def landing_predicate(days: DateRange) -> str:
    """The replaceWhere predicate of a run: its landing dates, inclusive."""
    return f"_landing_date >= DATE'{days.start}' AND _landing_date <= DATE'{days.end}'"


def landing_filter(days: DateRange) -> Column:
    """Rows landed in the run's range of landing dates: ``landing_predicate`` as a Column."""
    return F.expr(landing_predicate(days))


def event_dates_predicate(event_dates: Iterable[dt.date]) -> str:
    """A replaceWhere predicate selecting the given event-date partitions.

    No dates give ``false``, which matches no row: a publish that rebuilt no event date
    replaces nothing.
    """
    dates = sorted(set(event_dates))
    if not dates:
        return "false"
    return "event_date IN ({})".format(", ".join(f"DATE'{d}'" for d in dates))
