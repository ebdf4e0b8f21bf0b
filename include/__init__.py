"""Helpers around the Spark jobs: Airflow DAG construction, local Airflow, the demo."""
