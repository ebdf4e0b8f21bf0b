"""Quarantine reason codes, in the order silver checks them: the first failing check wins.

docs/SILVER.md explains each code; ``REASONS`` is the single source of that order.
"""

from __future__ import annotations

MALFORMED_JSON = "MALFORMED_JSON"
MISSING_FIELD = "MISSING_FIELD"
INVALID_EVENT_TYPE = "INVALID_EVENT_TYPE"
INVALID_EVENT_TIME = "INVALID_EVENT_TIME"
FUTURE_EVENT_TIME = "FUTURE_EVENT_TIME"
INVALID_QUANTITY = "INVALID_QUANTITY"
INVALID_PRICE = "INVALID_PRICE"
UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
NO_FX_RATE = "NO_FX_RATE"

# Check order: a record with several defects is quarantined under the first of these.
REASONS = (
    MALFORMED_JSON,
    MISSING_FIELD,
    INVALID_EVENT_TYPE,
    INVALID_EVENT_TIME,
    FUTURE_EVENT_TIME,
    INVALID_QUANTITY,
    INVALID_PRICE,
    UNKNOWN_CURRENCY,
    NO_FX_RATE,
)
