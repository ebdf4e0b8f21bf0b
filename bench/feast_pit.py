"""Time Feast's Spark offline store (get_historical_features) on bench/pit.py's data.

Runs inside bench/.venv-feast (bench/setup_feast.sh), started by bench/pit.py --feast:

    bench/.venv-feast/bin/python bench/feast_pit.py --features DIR --spine DIR

A throwaway feature repo in a temp folder declares the snapshots (the Delta folder read
as Parquet: one write, so every data file is live) as a SparkSource with feature_ts as
the event timestamp and available_at as the created timestamp; the spine's (user_id, ts)
rows are the entity frame. Prints one JSON line: Feast's version, rows, seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

FEATURES = (
    ("orders_7d", "Int64"),
    ("net_usd_30d", "Float64"),
    ("aov_usd_30d", "Float64"),
    ("lifetime_orders", "Int64"),
    ("recency", "Int32"),
    ("monetary_value", "Float64"),
)

REPO_CONFIG = """\
project: bench_pit
registry: {repo}/registry.db
provider: local
offline_store:
  type: spark
  spark_conf:
    spark.master: "local[2]"
    spark.driver.memory: "8g"
    spark.sql.session.timeZone: "UTC"
    spark.sql.shuffle.partitions: "16"
    spark.ui.enabled: "false"
online_store:
  type: sqlite
  path: {repo}/online.db
entity_key_serialization_version: 3
"""


def main() -> None:
    """Declare the feature view, run get_historical_features into a noop sink, time it."""
    import feast
    from feast import Entity, FeatureStore, FeatureView, Field
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.types import Float64, Int32, Int64

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True)
    parser.add_argument("--spine", required=True)
    args = parser.parse_args()

    types = {"Int64": Int64, "Int32": Int32, "Float64": Float64}
    repo = Path(tempfile.mkdtemp(prefix="feast-repo-"))
    (repo / "feature_store.yaml").write_text(REPO_CONFIG.format(repo=repo))
    store = FeatureStore(repo_path=str(repo))
    user = Entity(name="user", join_keys=["user_id"])
    source = SparkSource(
        name="user_features_source",
        path=args.features,
        file_format="parquet",
        timestamp_field="feature_ts",
        created_timestamp_column="available_at",
    )
    view = FeatureView(
        name="user_features",
        entities=[user],
        ttl=dt.timedelta(0),  # 0: no TTL, like the product's default
        schema=[Field(name=n, dtype=types[t]) for n, t in FEATURES],
        source=source,
    )
    store.apply([user, view])

    entity_sql = f"SELECT user_id, ts AS event_timestamp FROM parquet.`{args.spine}`"
    started = time.perf_counter()
    job = store.get_historical_features(
        entity_df=entity_sql,
        features=[f"user_features:{n}" for n, _ in FEATURES],
    )
    frame = job.to_spark_df()
    frame.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    rows = frame.count()
    print(json.dumps({"feast": feast.__version__, "rows": rows, "seconds": seconds}))


if __name__ == "__main__":
    main()
