"""
### training_set

Builds a **point-in-time correct training set** from a spine of `(user_id, ts, label)`
rows: every row gets the `gold.user_features` snapshot it could have seen at `ts`.

Trigger it with the form:

* **spine**: path of the spine (Delta folder, Parquet or CSV), local or `s3a://`.
* **name**: the output is `training/<name>`, with `_manifest.json` beside it recording
  the Delta version of every input, so the set can be rebuilt exactly.
* **mode**: `event_time` (history as corrected since) or `as_known` (only what was
  available at `ts`, as a model serving then had it).
* **ttl_days**: oldest snapshot allowed, in days before `ts` (empty: no limit).
* **features**: feature columns to keep (empty: all).

`training_set` stages the rows; `gate_training_set` checks them for leakage and with
the training-set suite, then publishes and updates the `training_sets` Asset.
`training_set_on_features` rebuilds a configured set whenever the features change.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from include.dag_factory import (
    TrainingRequest,
    dag_start_date,
    default_args,
    lakehouse_root,
    training_set_tasks,
)
from spark_jobs.names import ALLOWED, SAFE_NAME

ROOT = lakehouse_root()

with DAG(
    dag_id="training_set",
    schedule=None,
    start_date=dag_start_date(),
    catchup=False,
    default_args=default_args(retries=1),
    tags=["lakehouse", "training"],
    doc_md=__doc__,
    params={
        "spine": Param(
            type="string",
            minLength=1,
            title="Spine",
            description="Path of the spine: (user_id, ts, label) rows as Delta, Parquet or CSV.",
        ),
        "name": Param(
            "training_set",
            type="string",
            # The one rule every path-forming name passes (the job checks it again).
            pattern=SAFE_NAME,
            title="Name",
            description=f"Output name: training/<name> ({ALLOWED}).",
        ),
        "mode": Param(
            "event_time",
            type="string",
            enum=["event_time", "as_known"],
            title="Mode",
            description="event_time: history as corrected; as_known: only what was "
            "available at ts.",
        ),
        "ttl_days": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="TTL (days)",
            description="Oldest snapshot allowed, in days before ts; empty for no limit.",
        ),
        "features": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Features",
            description="Feature columns to keep, one per line; empty for all.",
        ),
    },
) as dag:
    training_set_tasks(
        TrainingRequest(
            spine="{{ params.spine }}",
            name="{{ params.name }}",
            mode="{{ params.mode }}",
            ttl_days="{{ '' if params.ttl_days is none else params.ttl_days }}",
            features="{{ (params.features or []) | join(',') }}",
        ),
        ROOT,
    )
