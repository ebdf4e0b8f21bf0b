"""Training-set names from the form and from Variables pass the one safe-name rule."""

from __future__ import annotations

import pytest

from spark_jobs import names

UNSAFE = ["../x", "../bronze/purchases", "/etc/passwd", "a/b", ".hidden", "x\n", "", "ｘ"]


@pytest.fixture
def name_param(dag_bag):
    """The ``name`` Param of the training_set DAG's form."""
    assert dag_bag.import_errors == {}
    return dag_bag.dags["training_set"].params.get_param("name")


def test_the_form_uses_the_safe_name_pattern_of_spark_jobs_names(name_param) -> None:
    assert name_param.schema["pattern"] is names.SAFE_NAME


@pytest.mark.parametrize("bad", UNSAFE, ids=repr)
def test_the_form_rejects_a_name_that_is_not_one_plain_segment(name_param, bad) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        name_param.resolve(bad)


def test_the_form_accepts_a_plain_name(name_param) -> None:
    assert name_param.resolve("churn_v1") == "churn_v1"


@pytest.mark.parametrize("bad", ["../bronze/purchases", "a/b", "..", "x\n"], ids=repr)
def test_scheduled_request_fails_on_an_unsafe_training_set_name(monkeypatch, bad) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from include.dag_factory import scheduled_training_request

    monkeypatch.setenv("TRAINING_SPINE", "/data/spine.parquet")
    monkeypatch.setenv("TRAINING_SET_NAME", bad)
    with pytest.raises(AirflowFailException, match="TRAINING_SET_NAME") as failed:
        scheduled_training_request()
    assert "letters, digits, _ and -" in str(failed.value)


def test_scheduled_request_passes_a_plain_training_set_name(monkeypatch) -> None:
    from include.dag_factory import scheduled_training_request

    monkeypatch.setenv("TRAINING_SPINE", "/data/spine.parquet")
    monkeypatch.setenv("TRAINING_SET_NAME", "churn_weekly")
    assert scheduled_training_request()["name"] == "churn_weekly"
