"""The record rules: each limit defined once, the suites and the data contract in step,
and random mutations of sound lines always ending valid or with exactly one reason."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from spark_jobs import reasons
from spark_jobs.catalog import FX_RATE, LANDING_FIELDS
from spark_jobs.config import PROJECT_ROOT
from spark_jobs.jobs.ingest_bronze import LINES_SCHEMA, parse_landing_lines
from spark_jobs.quality import gates
from spark_jobs.transforms import silver
from spark_jobs.transforms.fx import load_currencies
from tests.factories import landing_line

DATA_CONTRACT = PROJECT_ROOT / "docs" / "DATA_CONTRACT.md"
# Every limit a record rule has, by name; the doc must quote each value.
LIMITS = {
    "MAX_LINE_CHARS": silver.MAX_LINE_CHARS,
    "TRUNCATED_LINE_KEPT_CHARS": silver.TRUNCATED_LINE_KEPT_CHARS,
    "MAX_IDENTIFIER_CHARS": silver.MAX_IDENTIFIER_CHARS,
    "MAX_QUANTITY": silver.MAX_QUANTITY,
    "MAX_LINE_AMOUNT_USD": silver.MAX_LINE_AMOUNT_USD,
    "MAX_LINE_AMOUNT": silver.MAX_LINE_AMOUNT,
    "DETAIL_VALUE_CHARS": silver.DETAIL_VALUE_CHARS,
}


def expectations(suite: str, kind: str, column: str) -> list[dict]:
    return [
        e
        for e in gates.load_suite(suite)["expectations"]
        if e["type"] == kind and e["kwargs"].get("column") == column
    ]


def blocking(expectation: dict) -> bool:
    return expectation.get("meta", {}).get("severity", gates.SEVERITY_FAIL) == gates.SEVERITY_FAIL


def test_the_silver_suite_bounds_records_only_with_the_rules_own_limits():
    (quantity,) = expectations("silver_purchases", "expect_column_values_to_be_between", "quantity")
    assert (quantity["kwargs"]["min_value"], quantity["kwargs"]["max_value"]) == (
        1,
        silver.MAX_QUANTITY,
    )
    amounts = expectations("silver_purchases", "expect_column_values_to_be_between", "amount_usd")
    (blocking_amount,) = [e for e in amounts if blocking(e)]
    assert (blocking_amount["kwargs"]["min_value"], blocking_amount["kwargs"]["max_value"]) == (
        -silver.MAX_LINE_AMOUNT_USD,
        silver.MAX_LINE_AMOUNT_USD,
    )
    # What is left is a distribution: a share of the day, which never blocks.
    assert all(e["kwargs"].get("mostly") for e in amounts if not blocking(e))
    (price,) = expectations("silver_purchases", "expect_column_values_to_be_between", "unit_price")
    assert price["kwargs"] == {"column": "unit_price", "min_value": 0}
    (types,) = expectations("silver_purchases", "expect_column_values_to_be_in_set", "event_type")
    assert tuple(types["kwargs"]["value_set"]) == silver.EVENT_TYPES


def test_every_blocking_numeric_bound_of_the_silver_suite_is_a_known_invariant():
    # A new per-record limit in the suite (rather than in silver.py) fails here.
    known = {"quantity", "unit_price", "amount_usd", "fx_rate_to_usd"}
    bounded = {
        e["kwargs"]["column"]
        for e in gates.load_suite("silver_purchases")["expectations"]
        if e["type"] == "expect_column_values_to_be_between"
        and blocking(e)
        and any(isinstance(e["kwargs"].get(k), int | float) for k in ("min_value", "max_value"))
    }
    assert bounded == known


def test_the_bronze_suite_caps_raw_at_the_line_limit():
    (cap,) = expectations("bronze_purchases", "expect_column_value_lengths_to_be_between", "_raw")
    assert cap["kwargs"]["max_value"] == silver.MAX_LINE_CHARS and blocking(cap)


def test_the_quarantine_suite_knows_every_reason_code():
    (codes,) = expectations("silver_quarantine", "expect_column_values_to_be_in_set", "reason")
    assert tuple(codes["kwargs"]["value_set"]) == reasons.REASONS


def test_reason_codes_are_unique_and_named_after_themselves():
    assert len(set(reasons.REASONS)) == len(reasons.REASONS)
    assert all(getattr(reasons, code) == code for code in reasons.REASONS)


def test_the_data_contract_names_every_reason_code_in_check_order():
    text = DATA_CONTRACT.read_text()
    table = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", text, flags=re.MULTILINE)
    assert [code for _, code in table] == list(reasons.REASONS)
    assert [int(n) for n, _ in table] == list(range(1, len(reasons.REASONS) + 1))


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_the_data_contract_quotes_every_limit(name):
    value = LIMITS[name]
    written = {str(value), f"{value:,}"}
    if value >= 10**6 and re.fullmatch(r"10*", str(value)):
        written.add(f"10^{len(str(value)) - 1}")
    text = DATA_CONTRACT.read_text()
    assert f"`{name}`" in text, name
    assert any(w in text for w in written), (name, value)


def test_the_data_contract_states_the_identifier_characters():
    assert f"`{silver.IDENTIFIER_CHARACTERS}`" in DATA_CONTRACT.read_text()


# Random mutations of sound lines through parse_landing_lines and validate.
DAY = dt.date(2026, 3, 2)
SOURCE = f"file:/lake/landing/purchases/dt={DAY}/part-00000.jsonl"
RATES = {"USD": Decimal("1"), "EUR": Decimal("1.08000000"), "JPY": Decimal("0.00660000")}
CURRENCIES = ("USD", "EUR", "JPY", "GBP")
INTERESTING = st.sampled_from(
    [
        "",
        " ",
        "<b>x</b>",
        "{}",
        "0",
        "-1",
        "2.5",
        "10000",
        "10001",
        "1e3",
        "12,50",
        "19.99",
        "1.23456",
        "600000.00",
        "2026-03-02T10:00:00",
        "2026-03-01T23:59:60Z",
        "2026-03-02T23:30:00-05:00",
        "9999-12-31T23:59:59Z",
        "2026-03-02T08:15:30.123456789+09:00",
        "refund",
        "Purchase",
        "usd",
        "JPY",
        "x" * 129,
        "\u0007",
    ]
)
JSON_VALUES = st.one_of(
    INTERESTING,
    st.text(max_size=12),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def mutated_line(draw) -> str:
    """A sound line, then up to two random mutations of its fields or its text."""
    record = json.loads(
        landing_line(
            f"e{draw(st.integers(0, 10**6))}",
            quantity=draw(st.integers(1, 20)),
            unit_price=draw(st.sampled_from(["0", "0.5", "19.99", "1200000", "250.0001"])),
            currency=draw(st.sampled_from(CURRENCIES)),
            event_type=draw(st.sampled_from(silver.EVENT_TYPES)),
        )
    )
    text_mutations = []
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(LANDING_FIELDS))
        action = draw(st.sampled_from(["set", "set", "set", "drop", "duplicate", "cut", "append"]))
        if action == "set":
            record[field] = draw(JSON_VALUES)
        elif action == "drop":
            record.pop(field, None)
        else:
            text_mutations.append((action, field))
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=draw(st.booleans()))
    for action, field in text_mutations:
        if action == "duplicate":
            line = line[:-1] + f',"{field}":{json.dumps(draw(JSON_VALUES))}' + "}"
        elif action == "cut":
            line = line[: draw(st.integers(0, max(0, len(line) - 1)))]
        else:
            line += draw(st.sampled_from([" x", "}", ",", "\t"]))
    return line


def strict_json(line: str) -> dict:
    """The record as a strict JSON parser reads it: no NaN, no repeated keys."""

    def no_repeats(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"repeated key in {line!r}")
        return dict(pairs)

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(line, object_pairs_hook=no_repeats, parse_constant=no_constants)


def utc_instant(text: str) -> dt.datetime:
    """An ISO-8601 time with offset as a naive UTC datetime, to the microsecond."""
    match = re.fullmatch(r"(.{19})(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert match, text
    base = dt.datetime.fromisoformat(match.group(1) + (match.group(3).replace("Z", "+00:00")))
    micros = int((match.group(2) or ".0")[1:7].ljust(6, "0"))
    return base.astimezone(dt.UTC).replace(tzinfo=None, microsecond=micros)


@pytest.fixture(scope="module")
def daily_rates(spark):
    rows = [
        (DAY - dt.timedelta(days=days), currency, rate, DAY - dt.timedelta(days=days))
        for days in range(3)
        for currency, rate in RATES.items()
    ]
    return spark.createDataFrame(
        rows,
        f"fx_date date, currency string, fx_rate_to_usd {FX_RATE.simpleString()}, "
        "fx_rate_date date",
    )


# Few examples of many lines each: every example is one Spark job. No shrinking (each
# step would be another job); a failure reports the generated lines as they were.
@settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(mutated_line(), min_size=20, max_size=40))
def test_every_mutated_line_is_valid_or_has_exactly_one_known_reason(spark, daily_rates, lines):
    bronze = parse_landing_lines(
        spark.createDataFrame([(line, SOURCE) for line in lines], LINES_SCHEMA)
    )
    validated = silver.validate(bronze, load_currencies(), daily_rates, 4).select(
        "_raw",
        "reason",
        "reason_detail",
        *silver.IDENTIFIER_FIELDS,
        "_event_time",
        "_quantity",
        "_unit_price",
        "_fx_rate",
        "_amount_usd",
    )
    rows = validated.collect()
    assert sorted(r["_raw"] for r in rows) == sorted(lines)
    for row in rows:
        line = row["_raw"]
        if row["reason"] is not None:
            assert row["reason"] in reasons.REASONS, line
            assert row["reason_detail"], line
            continue
        record = strict_json(line)  # a valid line is strict JSON with every field
        # Identifiers keep their landed text (a JSON number as its digits).
        assert all(
            re.fullmatch(silver.IDENTIFIER_PATTERN, row[f]) for f in silver.IDENTIFIER_FIELDS
        )
        if isinstance(record["event_id"], str):
            assert row["event_id"] == record["event_id"], line
        assert row["_quantity"] == int(record["quantity"]) <= silver.MAX_QUANTITY
        price = Decimal(str(record["unit_price"]))
        assert row["_unit_price"] == price, line
        assert row["_event_time"] == utc_instant(record["event_time"]), line
        assert row["_event_time"] < dt.datetime(2026, 3, 3), line
        usd = (row["_quantity"] * price * row["_fx_rate"]).quantize(
            Decimal("0.0001"), ROUND_HALF_UP
        )
        signed = -usd if record["event_type"] == "refund" else usd
        assert row["_amount_usd"] == signed, line
        assert abs(signed) <= silver.MAX_LINE_AMOUNT_USD, line
