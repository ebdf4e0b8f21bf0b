# Purchase lakehouse: the targets the README names. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export LAKEHOUSE_ROOT ?= $(CURDIR)/lakehouse
JARS_STAMP := .cache/jars/.complete
S3PROXY_STAMP := .cache/s3proxy/.complete
DEPS_STAMP := $(VENV)/.deps-installed
# Airflow's published constraints for 3.3.2 on Python 3.11, when vendored (see
# include/constraints/README.md). Without them the dev lock is compiled under itself,
# so a re-lock changes no pinned version and only resolves what pyproject.toml adds.
AIRFLOW_CONSTRAINTS := include/constraints/airflow-3.3.2-py3.11.txt
LOCK_CONSTRAINTS ?= $(or $(wildcard $(AIRFLOW_CONSTRAINTS)),requirements-dev.txt)
COMPILE := uv pip compile -q pyproject.toml --python-version 3.11 --custom-compile-command "make lock"

DEMO_START ?= 2026-01-01
DEMO_END ?= 2026-01-30
DEMO_USERS ?= 2000

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast lint fmt lock jars airflow s3 postgres cluster history report bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(DEPS_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v uv >/dev/null || $(PYTHON) -m pip install -q uv==0.13.8
	uv venv -q --allow-existing --python $(PYTHON) $(VENV)
	uv pip install -q --python $(PY) -r requirements-dev.txt
	uv pip install -q --python $(PY) --no-deps -e .
	@touch $@

$(JARS_STAMP): include/pom.xml
	rm -rf .cache/jars
	mvn -q -B -f include/pom.xml package
	@touch $@

$(S3PROXY_STAMP): include/s3proxy/pom.xml
	rm -rf .cache/s3proxy
	mvn -q -B -f include/s3proxy/pom.xml package
	@touch $@

setup: $(DEPS_STAMP) $(JARS_STAMP) $(S3PROXY_STAMP) ## create .venv from the dev lock, install the project, fetch the Spark jars and the test S3 server

jars: $(JARS_STAMP) ## fetch Delta and S3A jars into .cache/jars (Maven, include/pom.xml)

demo: setup ## set up, then run the whole pipeline on a local lakehouse and say where to look
	$(PY) -m devtools.demo --root $(LAKEHOUSE_ROOT) --start $(DEMO_START) --end $(DEMO_END) --users $(DEMO_USERS)

# --no-loadscope-reorder: keep the collection order (tests/conftest.py puts the long files
# first); xdist would otherwise sort files by test count and start them last.
test: setup ## run the whole test suite (Spark, Delta, GX, Airflow, browser)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25 tests

test-fast: setup ## the unit layer only: core, storage, transforms, quality, training (tests/ folders)
	$(PY) -m pytest -q -m unit tests

lint: $(DEPS_STAMP) ## ruff lint and format check, mypy type check (mypy.ini)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(DEPS_STAMP) ## ruff autofix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lock: ## recompile requirements-dev.txt and requirements.txt (exact pins) from pyproject.toml
	$(COMPILE) --extra airflow --group dev -c $(LOCK_CONSTRAINTS) -o requirements-dev.txt
	$(COMPILE) --extra airflow -c requirements-dev.txt -o requirements.txt

airflow: setup ## start Airflow (API server, scheduler, DAG processor) on http://127.0.0.1:8080
	$(PY) -m devtools.airflow_local start

s3: setup ## start an S3-compatible server (s3proxy) on 127.0.0.1:9000 with a bucket, files under .s3
	$(PY) -m devtools.s3_server

postgres: setup ## start a throw-away PostgreSQL on 127.0.0.1:5433 for Airflow's metadata DB (.postgres)
	$(PY) -m devtools.postgres

cluster: setup ## start a Spark standalone master + worker and a Connect server on them (127.0.0.1)
	$(PY) -m devtools.spark_cluster

history: setup ## start Spark's History Server on http://127.0.0.1:18080 over the lakehouse's event log
	$(PY) -m devtools.history_server

REPORT_DAYS ?= 7
report: $(DEPS_STAMP) ## print the operations report of the last REPORT_DAYS logical dates (ops.stage_runs)
	$(PY) -m spark_jobs.ops.report --root $(LAKEHOUSE_ROOT) --days $(REPORT_DAYS)

bench: setup ## run the benchmarks; figures go to docs/BENCHMARKS.md by hand
	$(PY) bench/ingest.py
	$(PY) bench/features.py
	$(PY) bench/gates.py
	$(PY) bench/pit.py
	$(PY) bench/daily_run.py

clean: ## remove the local lakehouse, Airflow home and cluster folder (keeps .venv and jars)
	rm -rf lakehouse .airflow .cluster .s3 .postgres artifacts
