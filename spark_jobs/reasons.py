"""Quarantine reason codes, in the order silver checks them: the first failing check wins.

docs/DATA_CONTRACT.md lists each code with its rule and limit; ``REASONS`` is the single
source of that order. The order goes from the outside in: what ingest could not read
(the file, the line), then the line as JSON, then each field in landing order, then the
checks that need several fields and the reference data (the currency's rate, the USD
amount), so a record's reason is its most basic defect.
"""

from __future__ import annotations

# The landing file could not be read (corrupt or truncated gzip, a directory).
UNREADABLE_FILE = "UNREADABLE_FILE"
# The line is longer than bronze keeps (silver.MAX_LINE_CHARS).
LINE_TOO_LONG = "LINE_TOO_LONG"
# The line's bytes are not UTF-8.
INVALID_ENCODING = "INVALID_ENCODING"
MALFORMED_JSON = "MALFORMED_JSON"
# A landing field appears twice in one object: which value counts is a guess.
DUPLICATE_FIELD = "DUPLICATE_FIELD"
MISSING_FIELD = "MISSING_FIELD"
INVALID_IDENTIFIER = "INVALID_IDENTIFIER"
INVALID_EVENT_TYPE = "INVALID_EVENT_TYPE"
INVALID_EVENT_TIME = "INVALID_EVENT_TIME"
FUTURE_EVENT_TIME = "FUTURE_EVENT_TIME"
INVALID_QUANTITY = "INVALID_QUANTITY"
IMPLAUSIBLE_QUANTITY = "IMPLAUSIBLE_QUANTITY"
INVALID_PRICE = "INVALID_PRICE"
UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
NO_FX_RATE = "NO_FX_RATE"
IMPLAUSIBLE_AMOUNT = "IMPLAUSIBLE_AMOUNT"

# Check order: a record with several defects is quarantined under the first of these.
REASONS = (
    UNREADABLE_FILE,
    LINE_TOO_LONG,
    INVALID_ENCODING,
    MALFORMED_JSON,
    DUPLICATE_FIELD,
    MISSING_FIELD,
    INVALID_IDENTIFIER,
    INVALID_EVENT_TYPE,
    INVALID_EVENT_TIME,
    FUTURE_EVENT_TIME,
    INVALID_QUANTITY,
    IMPLAUSIBLE_QUANTITY,
    INVALID_PRICE,
    UNKNOWN_CURRENCY,
    NO_FX_RATE,
    IMPLAUSIBLE_AMOUNT,
)
