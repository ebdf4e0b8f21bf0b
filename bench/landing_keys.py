"""What silver's duplicate-field check costs: the keys extracted once vs inside the lambda.

    PYTHONPATH=. .venv/bin/python bench/landing_keys.py                # 200,000 lines
    PYTHONPATH=. .venv/bin/python bench/landing_keys.py --lines 1000000

Silver quarantines a line whose object names a field twice. It finds the repeated keys
with a regex over the raw line and a filter over the keys found. The baseline names the
extraction inside the filter's lambda, as silver did before: Spark then runs the regex
over the whole line again for every key, and once more for each use of the result.
``silver.with_repeated_keys`` extracts once, into a column.

Both sides run over the same cached lines in this process's session, alternating
(baseline, product, product, baseline) so that warm-up falls on both alike. Prints the
seconds of each pass and the baseline / product ratio; both must find the same keys.
"""

from __future__ import annotations

import argparse
import json
import time

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_jobs.config import Settings
from spark_jobs.session import build_spark
from spark_jobs.transforms import silver

ORDER = ("baseline", "product", "product", "baseline")


def inline_repeated_keys(frame: DataFrame) -> DataFrame:
    """The baseline: the extraction expression named inside the lambda."""
    pattern = F.lit(silver._LANDING_KEY_PATTERN)
    keys: Column = F.regexp_extract_all(F.col("_raw"), pattern, 1)
    repeated = F.filter(keys, lambda key, i: F.array_position(keys, key) <= i)
    return frame.withColumn("_repeated_keys", repeated)


def checksum(frame: DataFrame) -> tuple[int, int]:
    """Two uses of the result, as in silver (its size and its distinct keys)."""
    repeated = F.col("_repeated_keys")
    [row] = frame.agg(
        F.sum(F.size(repeated)).alias("found"),
        F.sum(F.size(F.array_distinct(repeated))).alias("distinct"),
    ).collect()
    return int(row["found"]), int(row["distinct"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    spark = build_spark(
        Settings.from_env(spark_master="local[*]", event_log="off"), app_name="bench-keys"
    )
    record = {
        "event_id": "e-1",
        "order_id": "o-1",
        "user_id": "u1",
        "event_type": "purchase",
        "event_time": "2026-03-01T10:00:00Z",
        "sku": "S1",
        "category": "books",
        "quantity": 1,
        "unit_price": "10.00",
        "currency": "USD",
    }
    line = json.dumps(record)
    twice = line[:-1] + ', "sku": "S2"}'
    lines = (
        spark.range(args.lines)
        .select(
            F.when(F.col("id") % 100 == 0, F.lit(twice))
            .otherwise(F.concat(F.lit(line[:-1]), F.lit(', "n": '), F.col("id"), F.lit("}")))
            .alias("_raw")
        )
        .cache()
    )
    lines.count()
    seconds: dict[str, list[float]] = {"baseline": [], "product": []}
    results = set()
    for side in ORDER:
        build = inline_repeated_keys if side == "baseline" else silver.with_repeated_keys
        started = time.perf_counter()
        results.add(checksum(build(lines)))
        seconds[side].append(time.perf_counter() - started)
        print(f"{side:9} {seconds[side][-1]:7.2f} s", flush=True)
    if len(results) != 1:
        raise SystemExit(f"the two sides found different keys: {sorted(results)}")
    baseline, product = (sum(seconds[s]) / len(seconds[s]) for s in ("baseline", "product"))
    print(f"{args.lines} lines, repeated keys found {results.pop()}")
    print(f"mean: baseline {baseline:.2f} s, product {product:.2f} s")
    print(f"baseline / product: {baseline / product:.2f}x")
    spark.stop()


if __name__ == "__main__":
    main()
