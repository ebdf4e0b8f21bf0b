"""A corpus of bad landing input, run through the real jobs as one landing day.

Every kind of bad input below lands on the same day as 200 sound purchases; ingest_bronze
and build_silver run through their command lines (build, Great Expectations gate,
publish, nothing-lost check). Each kind must end where docs/DATA_CONTRACT.md says: in
quarantine with its reason code, published, or counted as a duplicate. No kind may
crash a job or block the day.

A kind's lines carry its token (``k07-...``) in an identifier or its file name, which
is how its bronze, silver and quarantine rows are found again.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from spark_jobs.catalog import (
    BRONZE_LANDING_LOG,
    BRONZE_PURCHASES,
    SILVER_PURCHASES,
    SILVER_QUARANTINE,
    landing_day_path,
)
from spark_jobs.jobs import build_silver, ingest_bronze
from spark_jobs.quality.accounting import check_accounting
from spark_jobs.reasons import (
    DUPLICATE_FIELD,
    FUTURE_EVENT_TIME,
    IMPLAUSIBLE_AMOUNT,
    IMPLAUSIBLE_QUANTITY,
    INVALID_ENCODING,
    INVALID_EVENT_TIME,
    INVALID_EVENT_TYPE,
    INVALID_IDENTIFIER,
    INVALID_PRICE,
    INVALID_QUANTITY,
    LINE_TOO_LONG,
    MALFORMED_JSON,
    MISSING_FIELD,
    UNKNOWN_CURRENCY,
    UNREADABLE_FILE,
)
from spark_jobs.transforms import silver
from tests.factories import DROP, jsonl_bytes, land_bytes, landing_line, run_stage, table_frame

DAY = dt.date(2026, 3, 2)  # a Monday: every reference currency has a rate
GOOD_LINES = 200
PUBLISHED = "published"
DUPLICATE = "duplicate"
SOME = -1  # an expected count meaning "at least one"
FOLDER = None  # a file of a kind that is a directory instead


def raw_value(line: str, text: str) -> str:
    """``line`` with its placeholder value ``"@"`` replaced by raw JSON ``text``."""
    return line.replace('"@"', text)


def big_gzip(token: str, lines: int = 3000) -> bytes:
    return gzip.compress(jsonl_bytes([landing_line(f"{token}-{n}") for n in range(lines)]), mtime=0)


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: its lines in the day's shared file, or files of its own."""

    name: str
    expected: dict[str, int]  # outcome (a reason, PUBLISHED, DUPLICATE) -> rows
    lines: Callable[[str], list[str | bytes]] = lambda token: []
    files: Callable[[str], dict[str, bytes | None]] = lambda token: {}


def line(**overrides: object) -> Callable[[str], list[str | bytes]]:
    """The lines of a kind that is one sound line with ``overrides``."""
    return lambda token: [landing_line(f"{token}-1", **overrides)]


KINDS = [
    # The line as JSON.
    Kind("truncated JSON", {MALFORMED_JSON: 1}, lambda t: [landing_line(f"{t}-1")[:40]]),
    Kind(
        "text after the object",
        {MALFORMED_JSON: 1},
        lambda t: [landing_line(f"{t}-1") + " trailing"],
    ),
    Kind("an array, not an object", {MALFORMED_JSON: 1}, lambda t: [f'["{t}-1"]']),
    Kind(
        "single-quoted JSON",
        {MALFORMED_JSON: 1},
        lambda t: [landing_line(f"{t}-1").replace('"', "'")],
    ),
    Kind(
        "quantity NaN",
        {MALFORMED_JSON: 1},
        lambda t: [raw_value(landing_line(f"{t}-1", quantity="@"), "NaN")],
    ),
    Kind(
        "unit_price Infinity",
        {MALFORMED_JSON: 1},
        lambda t: [raw_value(landing_line(f"{t}-1", unit_price="@"), "Infinity")],
    ),
    Kind(
        "duplicate JSON key",
        {DUPLICATE_FIELD: 1},
        lambda t: [landing_line(f"{t}-1")[:-1] + ',"quantity":5}'],
    ),
    Kind(
        "key-like text escaped inside a value",
        {PUBLISHED: 1},
        line(category='"user_id": "u2"'),
    ),
    Kind("extra fields", {PUBLISHED: 1}, line(coupon="SPRING", channel={"web": True})),
    Kind("renamed field (userId)", {MISSING_FIELD: 1}, line(user_id=DROP, userId="u1")),
    Kind("required field null", {MISSING_FIELD: 1}, line(currency=None)),
    # Lines bronze cannot keep as they are.
    Kind("megabyte line", {LINE_TOO_LONG: 1}, line(category="x" * (1 << 20))),
    Kind("identifier longer than a line", {LINE_TOO_LONG: 1}, line(sku="S" * 70_000)),
    Kind(
        "non-UTF-8 bytes",
        {INVALID_ENCODING: 1},
        lambda t: [landing_line(f"{t}-1", category="cafe").encode().replace(b"cafe", b"caf\xe9")],
    ),
    # Identifiers.
    Kind("empty event_id", {MISSING_FIELD: 1}, line(event_id="")),
    Kind("whitespace user_id", {MISSING_FIELD: 1}, line(user_id="   ")),
    Kind("HTML in user_id", {INVALID_IDENTIFIER: 1}, line(user_id="<script>x</script>")),
    Kind("object as user_id", {INVALID_IDENTIFIER: 1}, line(user_id={"id": "u1"})),
    Kind("array as sku", {INVALID_IDENTIFIER: 1}, line(sku=["S1", "S2"])),
    Kind("control character in sku", {INVALID_IDENTIFIER: 1}, line(sku="S\u00071")),
    Kind("non-ASCII user_id", {INVALID_IDENTIFIER: 1}, line(user_id="üser")),
    Kind("10 000-character sku", {INVALID_IDENTIFIER: 1}, line(sku="S" * 10_000)),
    Kind("129-character order_id", {INVALID_IDENTIFIER: 1}, line(order_id="o" * 129)),
    Kind("128-character order_id", {PUBLISHED: 1}, line(order_id="o" * 128)),
    # Event type and time.
    Kind("event_type with a capital", {INVALID_EVENT_TYPE: 1}, line(event_type="Purchase")),
    Kind("object as event_type", {INVALID_EVENT_TYPE: 1}, line(event_type={"a": 1})),
    Kind(
        "timestamp without offset",
        {INVALID_EVENT_TIME: 1},
        line(event_time="2026-03-02T10:00:00"),
    ),
    Kind("leap second", {INVALID_EVENT_TIME: 1}, line(event_time="2026-03-01T23:59:60Z")),
    Kind("February 30", {INVALID_EVENT_TIME: 1}, line(event_time="2026-02-30T10:00:00Z")),
    Kind("epoch number as event_time", {INVALID_EVENT_TIME: 1}, line(event_time=1772445600)),
    Kind("year 9999", {FUTURE_EVENT_TIME: 1}, line(event_time="9999-12-31T23:59:59Z")),
    # Quantity.
    Kind("quantity as a float", {INVALID_QUANTITY: 1}, line(quantity=2.5)),
    Kind("quantity as a bool", {INVALID_QUANTITY: 1}, line(quantity=True)),
    Kind("quantity as a word", {INVALID_QUANTITY: 1}, line(quantity="two")),
    # The contract says integer, but a quoted whole number is read as the same number.
    Kind("quantity as a quoted number", {PUBLISHED: 1}, line(quantity="3")),
    Kind("quantity negative", {INVALID_QUANTITY: 1}, line(quantity=-1)),
    Kind("quantity of 11 digits", {INVALID_QUANTITY: 1}, line(quantity=99_999_999_999)),
    Kind("quantity 10001", {IMPLAUSIBLE_QUANTITY: 1}, line(quantity=silver.MAX_QUANTITY + 1)),
    Kind("quantity 10000", {PUBLISHED: 1}, line(quantity=silver.MAX_QUANTITY)),
    # Price and amount.
    Kind("price with a thousands comma", {INVALID_PRICE: 1}, line(unit_price="1,000.00")),
    Kind("price with a decimal comma", {INVALID_PRICE: 1}, line(unit_price="12,50")),
    Kind("price with an exponent", {INVALID_PRICE: 1}, line(unit_price="1e3")),
    Kind("price with 5 decimals", {INVALID_PRICE: 1}, line(unit_price="1.23456")),
    Kind("price as a JSON number", {PUBLISHED: 1}, line(unit_price=4.5)),
    Kind("lower-case currency", {UNKNOWN_CURRENCY: 1}, line(currency="usd")),
    Kind(
        "1,200,000 JPY line",
        {PUBLISHED: 1},
        line(unit_price="1200000", currency="JPY"),
    ),
    Kind(
        "line above the USD cap",
        {IMPLAUSIBLE_AMOUNT: 1},
        line(quantity=2, unit_price=str(silver.MAX_LINE_AMOUNT_USD // 2 + 1)),
    ),
    Kind(
        "refund of an unknown order",
        {PUBLISHED: 1},
        line(event_type="refund", order_id="o-never-sold"),
    ),
    # Files.
    Kind(
        "UTF-8 BOM",
        {PUBLISHED: 2},
        files=lambda t: {
            f"{t}-bom.jsonl": b"\xef\xbb\xbf"
            + jsonl_bytes([landing_line(f"{t}-1"), landing_line(f"{t}-2")])
        },
    ),
    Kind(
        "CRLF line ends",
        {PUBLISHED: 2},
        files=lambda t: {
            f"{t}-crlf.jsonl": jsonl_bytes(
                [landing_line(f"{t}-1"), landing_line(f"{t}-2")], newline=b"\r\n"
            )
        },
    ),
    Kind(
        "gzip that is not gzip",
        {UNREADABLE_FILE: 1},
        files=lambda t: {f"{t}-plain.jsonl.gz": jsonl_bytes([landing_line(f"{t}-1")])},
    ),
    Kind(
        "truncated gzip",
        {UNREADABLE_FILE: 1, PUBLISHED: SOME},
        files=lambda t: {f"{t}-cut.jsonl.gz": big_gzip(t)[: len(big_gzip(t)) // 2]},
    ),
    Kind(
        "gzip with garbage after its end",
        {UNREADABLE_FILE: 1, PUBLISHED: SOME},
        files=lambda t: {f"{t}-tail.jsonl.gz": big_gzip(t, 10) + b"not gzip"},
    ),
    Kind("empty file", {}, files=lambda t: {f"{t}-empty.jsonl": b""}),
    Kind("zero-byte .gz", {}, files=lambda t: {f"{t}-empty.jsonl.gz": b""}),
    Kind(
        "empty gzip stream",
        {},
        files=lambda t: {f"{t}-nothing.jsonl.gz": gzip.compress(b"", mtime=0)},
    ),
    Kind(
        "directory named *.jsonl", {UNREADABLE_FILE: 1}, files=lambda t: {f"{t}-dir.jsonl": FOLDER}
    ),
    Kind(
        "the same file landed twice",
        {PUBLISHED: 2, DUPLICATE: 2},
        files=lambda t: {
            name: jsonl_bytes([landing_line(f"{t}-1"), landing_line(f"{t}-2")])
            for name in (f"{t}-a.jsonl", f"{t}-b.jsonl")
        },
    ),
]
TOKENS = {f"k{n:02d}": kind for n, kind in enumerate(KINDS)}
TOKEN = re.compile(r"\b(k\d\d)-")


def token_of(*texts: str | None) -> str | None:
    """The kind token in the first text that has one (identifiers, raw line, file name)."""
    for text in texts:
        found = TOKEN.search(text or "")
        if found:
            return found.group(1)
    return None


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def corpus(spark, tmp_path_factory):
    """The corpus landed as one day and run through ingest_bronze and build_silver."""
    root = str(tmp_path_factory.mktemp("corpus") / "lakehouse")
    good = [landing_line(f"good-{n:04d}", user_id=f"u{n % 17}") for n in range(GOOD_LINES)]
    land_bytes(root, DAY, "good.jsonl", jsonl_bytes(good))
    shared = [text for token, kind in TOKENS.items() for text in kind.lines(token)]
    land_bytes(root, DAY, "shared.jsonl", jsonl_bytes(shared))
    for token, kind in TOKENS.items():
        for name, data in kind.files(token).items():
            if data is FOLDER:
                folder = Path(landing_day_path(root, DAY)) / name
                folder.mkdir(parents=True)
                (folder / "inside.jsonl").write_text(landing_line(f"{token}-inside") + "\n")
            else:
                land_bytes(root, DAY, name, data)

    run_stage(ingest_bronze, root, DAY)
    run_stage(build_silver, root, DAY)

    bronze = table_frame(spark, root, BRONZE_PURCHASES).collect()
    published = table_frame(spark, root, SILVER_PURCHASES).collect()
    quarantine = table_frame(spark, root, SILVER_QUARANTINE).collect()
    outcomes: dict[str, Counter] = {token: Counter() for token in TOKENS}
    landed: Counter = Counter()
    for row in bronze:
        token = token_of(row["_raw"], file_name(row["_source_file"]))
        if token:
            landed[token] += 1
    for row in quarantine:
        token = token_of(row["_raw"], file_name(row["_source_file"]))
        if token:
            outcomes[token][row["reason"]] += 1
    for row in published:
        token = token_of(row["event_id"], row["order_id"], file_name(row["_source_file"]))
        if token:
            outcomes[token][PUBLISHED] += 1
    for token, counts in outcomes.items():
        duplicates = landed[token] - sum(counts.values())
        if duplicates:
            counts[DUPLICATE] = duplicates
    return {
        "root": root,
        "bronze": bronze,
        "published": published,
        "quarantine": quarantine,
        "outcomes": outcomes,
        "landed": landed,
        "accounting": check_accounting(spark, root, DAY, DAY),
        "landing_log": table_frame(spark, root, BRONZE_LANDING_LOG).collect(),
    }


def test_the_corpus_has_at_least_30_kinds_of_bad_input():
    assert len(KINDS) >= 30
    assert len({kind.name for kind in KINDS}) == len(KINDS)


@pytest.mark.parametrize("token", sorted(TOKENS), ids=[k.name for _, k in sorted(TOKENS.items())])
def test_each_kind_ends_where_the_data_contract_says(corpus, token):
    kind = TOKENS[token]
    got = dict(corpus["outcomes"][token])
    expected = dict(kind.expected)
    for outcome, count in kind.expected.items():
        if count == SOME:
            assert got.get(outcome, 0) >= 1, (kind.name, got)
            expected[outcome] = got[outcome]
    assert got == expected, kind.name


def test_the_good_rows_of_the_day_publish(corpus):
    ids = {r["event_id"] for r in corpus["published"]}
    assert {f"good-{n:04d}" for n in range(GOOD_LINES)} <= ids


def test_nothing_is_lost_on_the_whole_corpus(corpus):
    (row,) = corpus["accounting"]
    assert row.balanced
    assert row.bronze == len(corpus["bronze"])
    assert row.silver == len(corpus["published"])
    assert row.quarantine == len(corpus["quarantine"])
    assert row.duplicates == sum(c[DUPLICATE] for c in corpus["outcomes"].values())


def test_empty_files_add_no_rows_but_count_as_landed_files(corpus):
    for token, kind in TOKENS.items():
        if not kind.expected:
            assert corpus["landed"][token] == 0, kind.name
    files = sum(
        1 for kind in TOKENS.values() for data in kind.files("k").values() if data is not FOLDER
    )
    assert [(r["_landing_date"], r["files"]) for r in corpus["landing_log"]] == [(DAY, files + 2)]


def test_a_long_line_keeps_its_start_length_and_hash_in_bronze(corpus):
    token = next(t for t, k in TOKENS.items() if k.name == "megabyte line")
    (text,) = TOKENS[token].lines(token)
    (row,) = [r for r in corpus["bronze"] if token_of(r["_raw"]) == token]
    assert row["_is_malformed"] and row["event_id"] is None
    assert len(row["_raw"]) <= silver.MAX_LINE_CHARS
    assert row["_raw"].startswith(text[: silver.TRUNCATED_LINE_KEPT_CHARS])
    assert f"truncated line of {len(text)} characters" in row["_raw"]
    assert hashlib.sha256(text.encode()).hexdigest() in row["_raw"]


def detail_of(corpus, kind_name: str) -> str:
    token = next(t for t, k in TOKENS.items() if k.name == kind_name)
    (row,) = [
        r
        for r in corpus["quarantine"]
        if token_of(r["_raw"], file_name(r["_source_file"])) == token
    ]
    return row["reason_detail"]


def test_reason_details_name_the_field_and_a_truncated_value(corpus):
    html = detail_of(corpus, "HTML in user_id")
    assert html.startswith("user_id '<script>x</script>' is not 1 to 128 of the characters")
    long_sku = detail_of(corpus, "10 000-character sku")
    assert long_sku.startswith("sku 'SSS") and len(long_sku) < 300
    assert "'10001'" in detail_of(corpus, "quantity 10001")
    assert "USD" in detail_of(corpus, "line above the USD cap")
    assert "truncated line of 1048" in detail_of(corpus, "megabyte line")
    assert "-plain.jsonl.gz cannot be read: not a valid gzip stream" in detail_of(
        corpus, "gzip that is not gzip"
    )
    assert "truncated" in detail_of(corpus, "truncated gzip")
    assert "a directory, not a file" in detail_of(corpus, "directory named *.jsonl")
    assert detail_of(corpus, "duplicate JSON key").endswith(
        "object: quantity (which value counts would be a guess)"
    )
