"""The simulated world: customers and their regions, currencies, catalogue, feed rates.

These are facts of the sample data only; the production rules the records must keep
(fields, reason codes, limits) come from ``spark_jobs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spark_jobs.transforms.fx import load_minor_units


@dataclass(frozen=True)
class Region:
    """Where a group of customers lives: its UTC offset and the currencies it pays in."""

    name: str
    utc_offset_minutes: int
    currencies: tuple[str, ...]  # the first is the home currency
    percent_of_customers: int


# Fixed offsets (no daylight saving) keep the data reproducible; negative, half- and
# quarter-hour offsets make local dates differ from UTC dates around midnight.
REGIONS = (
    Region("us_pacific", -480, ("USD",), 14),
    Region("us_eastern", -300, ("USD", "CAD"), 16),
    Region("hawaii", -600, ("USD",), 2),
    Region("newfoundland", -210, ("CAD", "USD"), 2),
    Region("canada_eastern", -300, ("CAD", "USD"), 5),
    Region("brazil", -180, ("BRL", "USD"), 6),
    Region("united_kingdom", 0, ("GBP", "EUR"), 9),
    Region("central_europe", 60, ("EUR", "CHF", "USD"), 14),
    Region("sweden", 60, ("SEK", "EUR"), 4),
    Region("india", 330, ("INR", "USD"), 12),
    Region("nepal", 345, ("INR", "USD"), 1),
    Region("japan", 540, ("JPY", "USD"), 8),
    Region("south_australia", 570, ("AUD",), 2),
    Region("australia_east", 600, ("AUD", "USD"), 5),
)
HOME_CURRENCY_SHARE = 0.85

# Units of each currency per US dollar, only to make shelf prices look local; the
# reporting conversion uses the reference rates, not these.
PRICE_LEVEL = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 150.0,
    "CAD": 1.36,
    "AUD": 1.52,
    "BRL": 5.0,
    "INR": 83.0,
    "CHF": 0.88,
    "SEK": 10.5,
}

# (category, cheapest, dearest shelf price in USD); prices are log-uniform in between.
CATEGORIES = (
    ("electronics", 15, 1500),
    ("books", 5, 60),
    ("home", 8, 400),
    ("garden", 5, 300),
    ("toys", 5, 120),
    ("apparel", 8, 250),
    ("beauty", 4, 90),
    ("sports", 10, 600),
    ("grocery", 1, 40),
    ("music", 1, 30),
    ("office", 2, 150),
    ("pet_supplies", 3, 120),
)
SKU_COUNT = 5000
MAX_ITEMS_PER_ORDER = 5
# The most items a generated line has: a shopper's basket, far below silver's plausibility
# limit (silver.MAX_QUANTITY), so no sound line is quarantined for its quantity.
MAX_LINE_QUANTITY = 6
MAX_LATE_DAYS = 10
REFUND_LOOKBACK_DAYS = 30
RETRY_LOOKBACK_DAYS = 2
NULL_CATEGORY_SHARE = 0.02
FREE_ITEM_SHARE = 0.002
# The share of users holding a purchase is u**USER_SKEW for u uniform: the top 1% of
# users place about 0.01 ** (1 / USER_SKEW) = 21% of the orders.
USER_SKEW = 3.0
# The missing landing day, when none is named: this day of the history and every
# MISSING_DAY_PERIOD days after it.
MISSING_DAY_INDEX = 8
MISSING_DAY_PERIOD = 30


@dataclass(frozen=True)
class Rates:
    """How messy the feed is; every rate is a share of a day's events, in [0, 1)."""

    defect_rate: float = 0.01  # broken records; > 0 also adds an empty file and a missing day
    late_rate: float = 0.03  # purchase orders landing 1..10 days after they happened
    retry_rate: float = 0.01  # deliveries repeated the same day or up to 2 days later
    refund_rate: float = 0.04  # refunds of a purchase landed up to 30 days earlier


def mean_items_per_order() -> float:
    """Expected line items of a purchase order: 1 + floor(u**2 * MAX_ITEMS_PER_ORDER)."""
    return 1 + sum(1 - math.sqrt(k / MAX_ITEMS_PER_ORDER) for k in range(1, MAX_ITEMS_PER_ORDER))


def minor_units() -> dict[str, int]:
    """Decimals of each currency silver accepts (include/reference/currencies.csv)."""
    return load_minor_units()
