"""The sample data generator lands files that keep the landing contract, with the mess
of a real feed in documented amounts.

Every check parses the landed files with plain Python (json, datetime), independently of
the generator's Spark code, and compares them with the contract in docs/DATA_CONTRACT.md
and the generator's own summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.generate_purchases import EXPECTED_REASON, GenerationSummary, generate, main
from spark_jobs.config import PROJECT_ROOT

START = dt.date(2026, 3, 1)
END = dt.date(2026, 3, 12)
# The 9th day of the history has no folder when defects are on (docs/GENERATOR.md).
MISSING_DAY = dt.date(2026, 3, 9)
REQUIRED = (
    "event_id",
    "order_id",
    "user_id",
    "event_type",
    "event_time",
    "sku",
    "quantity",
    "unit_price",
    "currency",
)
# Defect kind -> the quarantine reason docs/GENERATOR.md promises for it.
REASON_OF_DEFECT = {
    "malformed_json": "MALFORMED_JSON",
    "missing_field": "MISSING_FIELD",
    "null_field": "MISSING_FIELD",
    "invalid_event_type": "INVALID_EVENT_TYPE",
    "non_positive_quantity": "INVALID_QUANTITY",
    "non_integer_quantity": "INVALID_QUANTITY",
    "bad_price": "INVALID_PRICE",
    "unknown_currency": "UNKNOWN_CURRENCY",
    "unparsable_event_time": "INVALID_EVENT_TIME",
    "future_event_time": "FUTURE_EVENT_TIME",
}
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
DECIMAL_TEXT = re.compile(r"^\d+(\.\d+)?$")


def minor_units() -> dict[str, int]:
    path = PROJECT_ROOT / "include" / "reference" / "currencies.csv"
    with open(path, newline="") as handle:
        return {row["currency"]: int(row["minor_units"]) for row in csv.DictReader(handle)}


@dataclass(frozen=True)
class Line:
    landing_date: dt.date
    file: str
    text: str
    record: dict | None  # None when the line is not a JSON object
    reason: str | None  # the quarantine reason the contract gives it; None when sound

    @property
    def utc_time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.record["event_time"]).astimezone(dt.UTC)


def contract_reason(text: str, landing_date: dt.date) -> tuple[dict | None, str | None]:
    """The landing contract of docs/DATA_CONTRACT.md, written out independently of the generator."""
    try:
        record = json.loads(text)
    except ValueError:
        return None, "MALFORMED_JSON"
    if not isinstance(record, dict):
        return None, "MALFORMED_JSON"
    if any(record.get(name) is None for name in REQUIRED):
        return record, "MISSING_FIELD"
    if record["event_type"] not in ("purchase", "refund"):
        return record, "INVALID_EVENT_TYPE"
    event_time = record["event_time"]
    if not (isinstance(event_time, str) and ISO_WITH_OFFSET.match(event_time)):
        return record, "INVALID_EVENT_TIME"
    try:
        utc = dt.datetime.fromisoformat(event_time).astimezone(dt.UTC)
    except ValueError:
        return record, "INVALID_EVENT_TIME"
    end_of_landing_day = dt.datetime.combine(landing_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    if utc >= end_of_landing_day:
        return record, "FUTURE_EVENT_TIME"
    quantity = record["quantity"]
    if not (type(quantity) is int and quantity > 0):
        return record, "INVALID_QUANTITY"
    price = record["unit_price"]
    if not (isinstance(price, str) and DECIMAL_TEXT.match(price)):
        return record, "INVALID_PRICE"
    if record["currency"] not in minor_units():
        return record, "UNKNOWN_CURRENCY"
    return record, None


def read_landing(root: str) -> list[Line]:
    lines = []
    for path in sorted(Path(root, "landing", "purchases").glob("dt=*/*")):
        landing_date = dt.date.fromisoformat(path.parent.name.removeprefix("dt="))
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for text in handle.read().splitlines():
                record, reason = contract_reason(text, landing_date)
                lines.append(Line(landing_date, path.name, text, record, reason))
    return lines


def landed_files(root: str) -> dict[str, bytes]:
    base = Path(root, "landing", "purchases")
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


def first_deliveries(lines: list[Line]) -> list[Line]:
    """Sound lines, each event once: at its earliest landing date."""
    seen: set[str] = set()
    firsts = []
    for line in sorted((x for x in lines if x.reason is None), key=lambda x: x.landing_date):
        if line.record["event_id"] not in seen:
            seen.add(line.record["event_id"])
            firsts.append(line)
    return firsts


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory) -> tuple[GenerationSummary, list[Line], str]:
    root = str(tmp_path_factory.mktemp("landing") / "lakehouse")
    summary = generate(
        spark, root, START, END, users=300, seed=11, defect_rate=0.03, events_per_day=300
    )
    return summary, read_landing(root), root


def test_same_seed_gives_byte_identical_files_and_regenerating_replaces_the_day(
    spark, tmp_path
) -> None:
    def run(name: str, seed: int) -> str:
        root = str(tmp_path / name)
        generate(spark, root, START, START + dt.timedelta(days=2), users=50, seed=seed)
        return root

    first, again, other = run("first", 5), run("again", 5), run("other", 6)
    assert landed_files(first) == landed_files(again)
    assert landed_files(first).keys() == landed_files(other).keys()
    assert landed_files(first) != landed_files(other)

    stray = Path(first, "landing", "purchases", f"dt={START}", "stray.jsonl")
    stray.write_text('{"from": "an older run"}\n')
    generate(spark, first, START, START + dt.timedelta(days=2), users=50, seed=6)
    assert landed_files(first) == landed_files(other)


# SHA-256 over (name, bytes) of every file of the run in the test below, as the generator
# wrote them before it was split into devtools/sample_data. Change it only together with a
# deliberate change of the sample data (and say so in docs/GENERATOR.md).
PINNED_DIGEST = "53c278c7704c38ecfe72fd42e840b8850f5d26c6974b33f8a0603599d40df8ba"


def test_a_fixed_seed_writes_the_bytes_it_always_wrote(spark, tmp_path) -> None:
    root = str(tmp_path / "pinned")
    generate(spark, root, START, START + dt.timedelta(days=2), users=50, seed=5, files_per_day=3)
    files = landed_files(root)
    digest = hashlib.sha256()
    for name, content in files.items():
        digest.update(name.encode() + b"\0" + content + b"\0")

    assert sorted(files) == [
        f"dt={START + dt.timedelta(days=d)}/part-{n:05d}.jsonl" for d in range(3) for n in range(4)
    ]
    assert digest.hexdigest() == PINNED_DIGEST


def test_the_generator_promises_the_reasons_of_the_docs_and_uses_no_private_spark_handle() -> None:
    assert EXPECTED_REASON == REASON_OF_DEFECT
    sources = [PROJECT_ROOT / "devtools" / "generate_purchases.py"]
    sources += sorted((PROJECT_ROOT / "devtools" / "sample_data").glob("*.py"))
    private = [
        f"{path.name}: {handle}"
        for path in sources
        for handle in ("_jvm", "_jsc", "ChecksumFileSystem")
        if handle in path.read_text(encoding="utf-8")
    ]
    assert len(sources) > 2 and private == []


def test_gzip_files_are_reproducible_and_hold_the_same_lines(spark, tmp_path) -> None:
    days = (START, START + dt.timedelta(days=1))
    plain = str(tmp_path / "plain")
    packed = str(tmp_path / "packed")
    generate(spark, plain, *days, users=40, seed=3)
    generate(spark, packed, *days, users=40, seed=3, compress=True)
    first_bytes = landed_files(packed)
    generate(spark, packed, *days, users=40, seed=3, compress=True)

    assert landed_files(packed) == first_bytes
    assert first_bytes and all(name.endswith(".jsonl.gz") for name in first_bytes)
    assert [x.text for x in read_landing(packed)] == [x.text for x in read_landing(plain)]


def test_sound_lines_keep_the_landing_contract(landed) -> None:
    _, lines, _ = landed
    units = minor_units()
    sound = [line for line in lines if line.reason is None]
    assert len(sound) > 3000
    for line in sound:
        record = line.record
        assert list(record) == [*REQUIRED[:6], "category", *REQUIRED[6:]], line.text
        assert all(isinstance(record[k], str) and record[k] for k in REQUIRED if k != "quantity")
        assert record["category"] is None or isinstance(record["category"], str)
        _, _, cents = record["unit_price"].partition(".")
        assert len(cents) == units[record["currency"]], line.text
        assert line.utc_time.date() <= line.landing_date
    assert any(line.record["category"] is None for line in sound)
    assert {line.record["currency"] for line in sound} == set(units)


def test_events_happen_on_their_landing_day_unless_late(landed) -> None:
    summary, lines, _ = landed
    firsts = first_deliveries(lines)
    late = [x for x in firsts if x.utc_time.date() != x.landing_date]

    assert late and len(late) == sum(day.late for day in summary.days)
    assert all(x.record["event_type"] == "purchase" for x in late)
    assert all(1 <= (x.landing_date - x.utc_time.date()).days <= 10 for x in late)


def test_landed_lines_match_the_summary(landed) -> None:
    summary, lines, _ = landed
    for day in summary.days:
        on_day = [x for x in lines if x.landing_date == day.landing_date]
        sound = [x for x in on_day if x.reason is None]
        assert len(on_day) == day.lines
        assert len(sound) == day.purchases + day.refunds + day.retries
        assert sum(x.record["event_type"] == "refund" for x in sound) == day.refunds
        expected = Counter()
        for kind, count in day.defects.items():
            expected[REASON_OF_DEFECT[kind]] += count
        assert Counter(x.reason for x in on_day if x.reason) == +expected


def test_every_defect_kind_lands_every_day_with_its_reason(landed) -> None:
    summary, lines, _ = landed
    assert all(
        summary.defects[kind] > 0 for kind in (*REASON_OF_DEFECT, "empty_file", "missing_day")
    )
    for day in summary.days:
        if not day.missing:
            reasons = {x.reason for x in lines if x.landing_date == day.landing_date}
            assert reasons - {None} == set(REASON_OF_DEFECT.values())
    broken = {x.text for x in lines if x.reason}
    assert any('"quantity":2.5' in text or '"quantity":1.5' in text for text in broken)
    assert any('"unit_price":"12,50"' in text for text in broken)
    assert any('"currency":"XXX"' in text or '"currency":"usd"' in text for text in broken)


def test_a_day_lands_no_files_and_others_land_an_empty_file(landed) -> None:
    summary, _, root = landed
    folders = {p.name for p in Path(root, "landing", "purchases").iterdir()}

    assert folders == {f"dt={START + dt.timedelta(days=i)}" for i in range(12)} - {
        f"dt={MISSING_DAY}"
    }
    assert summary.day(MISSING_DAY).missing
    empty = [p for p in Path(root, "landing", "purchases").glob("dt=*/*") if p.stat().st_size == 0]
    assert len(empty) == summary.defects["empty_file"] == 11
    assert not list(Path(root, "landing").rglob(".*"))  # no checksum or hidden files


def test_retried_deliveries_repeat_the_line_byte_for_byte(landed) -> None:
    summary, lines, _ = landed
    copies: dict[str, list[Line]] = defaultdict(list)
    for line in lines:
        if line.reason is None:
            copies[line.record["event_id"]].append(line)
    repeated = {k: v for k, v in copies.items() if len(v) > 1}

    assert sum(len(v) - 1 for v in copies.values()) == sum(day.retries for day in summary.days)
    assert any(len({x.landing_date for x in v}) > 1 for v in repeated.values())
    assert any(len({x.landing_date for x in v}) == 1 for v in repeated.values())
    for deliveries in repeated.values():
        assert len({x.text for x in deliveries}) == 1
        dates = sorted(x.landing_date for x in deliveries)
        assert (dates[-1] - dates[0]).days <= 2


def test_refunds_refer_to_an_earlier_purchase_of_the_same_customer(landed) -> None:
    _, lines, _ = landed
    firsts = first_deliveries(lines)
    purchases = defaultdict(list)
    for x in firsts:
        if x.record["event_type"] == "purchase":
            purchases[(x.record["order_id"], x.record["sku"])].append(x)
    refunds = [x for x in firsts if x.record["event_type"] == "refund"]

    def refunds_purchase(refund: Line, purchase: Line) -> bool:
        return (
            all(
                refund.record[k] == purchase.record[k]
                for k in ("user_id", "unit_price", "currency")
            )
            and refund.record["quantity"] <= purchase.record["quantity"]
            and purchase.utc_time < refund.utc_time
            and purchase.landing_date < refund.landing_date
        )

    assert len(refunds) > 50
    for refund in refunds:
        candidates = purchases[(refund.record["order_id"], refund.record["sku"])]
        assert any(refunds_purchase(refund, p) for p in candidates), refund.text


def test_orders_have_several_line_items(landed) -> None:
    _, lines, _ = landed
    purchases = [x for x in first_deliveries(lines) if x.record["event_type"] == "purchase"]
    items = Counter(x.record["order_id"] for x in purchases)

    assert max(items.values()) >= 3
    assert 1.5 < len(purchases) / len(items) < 3.5
    by_order = defaultdict(set)
    for x in purchases:
        by_order[x.record["order_id"]].add(
            (x.record["user_id"], x.record["event_time"], x.record["currency"])
        )
    assert all(len(v) == 1 for v in by_order.values())


def test_a_few_customers_place_a_large_share_of_events(landed) -> None:
    _, lines, _ = landed
    per_user = Counter(x.record["user_id"] for x in first_deliveries(lines))
    top = sum(n for _, n in per_user.most_common(3))  # 1% of 300 customers

    assert top / sum(per_user.values()) > 0.10
    assert len(per_user) > 150


def test_customers_live_in_time_zones_where_local_and_utc_dates_differ(landed) -> None:
    _, lines, _ = landed
    times = [x.record["event_time"] for x in first_deliveries(lines)]
    offsets = {t[-6:] for t in times}

    assert any(o.startswith("-") for o in offsets)
    assert any(o.endswith(":30") for o in offsets) and any(o.endswith(":45") for o in offsets)
    local_dates_differ = [
        t
        for t in times
        if dt.date.fromisoformat(t[:10]) != dt.datetime.fromisoformat(t).astimezone(dt.UTC).date()
    ]
    assert len(local_dates_differ) > 100


def test_no_defects_when_the_defect_rate_is_zero(spark, tmp_path) -> None:
    root = str(tmp_path / "clean")
    days = (START, START + dt.timedelta(days=9))
    summary = generate(spark, root, *days, users=60, seed=2, defect_rate=0.0)
    lines = read_landing(root)

    assert [x for x in lines if x.reason] == []
    assert sum(summary.defects.values()) == 0
    assert all(p.stat().st_size > 0 for p in Path(root, "landing", "purchases").glob("dt=*/*"))
    assert len(list(Path(root, "landing", "purchases").iterdir())) == 10


def test_skip_dates_leave_named_days_without_files(spark, tmp_path) -> None:
    root = str(tmp_path / "gap")
    skipped = START + dt.timedelta(days=1)
    summary = generate(
        spark, root, START, START + dt.timedelta(days=3), users=80, seed=4,
        skip_dates=[skipped], refund_rate=0.2, retry_rate=0.2,
    )  # fmt: skip
    lines = read_landing(root)

    assert not Path(root, "landing", "purchases", f"dt={skipped}").exists()
    assert [d.landing_date for d in summary.days if d.missing] == [skipped]
    # nothing refers to or repeats an event of the day that never landed
    sound = [x for x in lines if x.reason is None]
    assert any(x.record["event_type"] == "refund" for x in sound)
    assert all(f"-{skipped:%Y%m%d}-" not in x.record["order_id"] for x in sound)


def test_generating_in_pieces_equals_one_run_with_the_same_history(spark, tmp_path) -> None:
    whole, pieces = str(tmp_path / "whole"), str(tmp_path / "pieces")
    last = START + dt.timedelta(days=5)
    middle = START + dt.timedelta(days=2)
    generate(spark, whole, START, last, users=50, seed=8)
    generate(spark, pieces, START, middle, users=50, seed=8)
    generate(
        spark, pieces, middle + dt.timedelta(days=1), last, users=50, seed=8, history_start=START
    )

    assert landed_files(whole) == landed_files(pieces)


def test_cli_generates_and_prints_a_summary(spark, lakehouse, capsys) -> None:
    code = main(
        ["--root", lakehouse, "--start", "2026-03-01", "--end", "2026-03-02", "--users", "30"]
    )

    assert code == 0
    out = capsys.readouterr().out
    assert "days: 2" in out and "rows/s" in out and "defects injected" in out
    assert len(read_landing(lakehouse)) > 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--start", "2026-02-30"], "invalid date"),
        (["--start", "2026-03-05", "--end", "2026-03-01"], "before --start"),
        (["--start", "2026-03-01", "--users", "0"], "--users 0"),
        (["--start", "2026-03-01", "--defect-rate", "1.5"], "--defect-rate 1.5"),
    ],
)
def test_cli_rejects_bad_input_with_exit_2_and_one_line(tmp_path, arguments, message) -> None:
    result = run_cli([*arguments, "--root", str(tmp_path / "lakehouse")])

    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_rejects_an_unwritable_root(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    result = run_cli(["--root", str(blocker / "lakehouse"), "--start", "2026-03-01"])

    assert result.returncode == 2
    assert "cannot create lakehouse root" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def run_cli(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.generate_purchases", *arguments],
        cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
