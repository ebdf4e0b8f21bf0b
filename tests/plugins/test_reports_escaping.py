"""Hostile values in landed data stay text in the report page, however it is opened.

A real gate validation (Spark, Great Expectations) of silver rows whose duplicate
``event_id`` values and unknown currency are markup, then the page as written and as
the reports plugin serves it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from pyspark.sql import SparkSession

from plugins import lakehouse_reports
from spark_jobs.catalog import SILVER_PURCHASES
from spark_jobs.quality import gates

DAY = dt.date(2026, 3, 2)
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = '"><script>alert(1)</script>'
QUOTES = "' onmouseover='alert(2)' \" onfocus=\"alert(3)"
HUGE = "<b>huge</b>" + "x" * 100_000
CURRENCY = "<svg onload=alert(4)>"


def silver_row(n: int, event_id: str, currency: str = "EUR") -> tuple:
    """One silver purchase, correct except for what the test makes hostile."""
    at = dt.datetime(DAY.year, DAY.month, DAY.day, 10, n, tzinfo=dt.UTC)
    values = {
        "event_id": event_id,
        "order_id": f"o{n}",
        "user_id": f"u{n}",
        "event_type": "purchase",
        "event_time": at,
        "event_date": DAY,
        "event_utc_offset_minutes": 60,
        "sku": f"sku-{n}",
        "category": None,
        "quantity": 2,
        "unit_price": Decimal("10.0000"),
        "currency": currency,
        "fx_rate_to_usd": Decimal("1.10000000"),
        "fx_rate_date": DAY,
        "amount_usd": Decimal("22.0000"),
        "_source_file": f"landing/purchases/dt={DAY}/part-0.jsonl",
        "_landing_date": DAY,
        "_ingested_at": at + dt.timedelta(days=1),
    }
    return tuple(values[f.name] for f in SILVER_PURCHASES.schema.fields)


class Markup(HTMLParser):
    """The tags and attribute names a browser would build from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def markup_of(page: str) -> Markup:
    parser = Markup()
    parser.feed(page)
    parser.close()
    return parser


async def reader(request: Request) -> str:
    """Admits every request: authorization is not what these tests are about."""
    return "reader"


@pytest.fixture(scope="module")
def hostile_report(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A failed silver validation of hostile values: (lakehouse root, gate result)."""
    root = str(tmp_path_factory.mktemp("escaping") / "lakehouse")
    hostile = [IMG, SCRIPT, QUOTES, HUGE]
    rows = [silver_row(n, value) for n, value in enumerate(hostile + hostile)]
    rows.append(silver_row(8, "e8", currency=CURRENCY))
    staged = spark.createDataFrame(rows, SILVER_PURCHASES.schema)
    gate = gates.validate_table(
        spark,
        root,
        SILVER_PURCHASES,
        staged,
        # Examples of every duplicate, so that each hostile value reaches the page.
        {"start": str(DAY), "end": str(DAY), "partial_unexpected_count": 10},
        f"{DAY}_{DAY}",
    )
    return root, gate


def test_gate_fails_on_the_hostile_values(hostile_report: tuple) -> None:
    _, gate = hostile_report
    assert not gate.passed
    failed = {(f["expectation"], f["columns"]) for f in gate.failed}
    assert ("expect_column_values_to_be_unique", "event_id") in failed
    assert ("expect_column_values_to_be_in_set", "currency") in failed


def test_report_page_shows_hostile_values_as_text_only(hostile_report: tuple) -> None:
    _, gate = hostile_report
    page = Path(gate.report_path).read_text()

    markup = markup_of(page)
    # Only the page's own elements; no handler attribute, whatever the data said.
    assert markup.tags <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "small",
        "table", "tr", "th", "td", "code", "span", "br", "div", "ul", "li", "b",
    }  # fmt: skip
    assert not {a for a in markup.attributes if a.startswith("on")}
    assert "<script" not in page.lower() and "<img" not in page and "<svg" not in page
    # The values are there, as text a person can read.
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#x27; onmouseover=&#x27;alert(2)&#x27;" in page
    assert "&lt;svg onload=alert(4)&gt;" in page
    assert "&lt;b&gt;huge&lt;/b&gt;xxx" in page
    # The 100 kB value is cut short: the page stays far smaller than the value.
    assert "x" * 1000 not in page
    assert len(page) < 50_000
    # What the other tests and people rely on is still there.
    assert "silver.purchases: gate FAILED" in page and 'id="lakehouse-gate"' in page
    assert "Great Expectations" in page and "silver_purchases" in page


def test_plugin_serves_the_page_without_scripts(hostile_report: tuple) -> None:
    root, gate = hostile_report
    client = TestClient(lakehouse_reports.create_app(root, authorize=reader))
    [entry] = client.get("/api/validations").json()
    assert gate.report_path.endswith(entry["report"])

    served = client.get(f"/reports/{entry['report']}")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/html")
    assert served.text == Path(gate.report_path).read_text()
    policy = served.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert served.headers["x-content-type-options"] == "nosniff"
    listing = client.get("/")
    assert "<img" not in listing.text and "content-security-policy" in listing.headers
