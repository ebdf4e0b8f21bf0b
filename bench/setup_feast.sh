#!/usr/bin/env bash
# Create bench/.venv-feast with Feast's Spark offline store, for bench/feast_pit.py.
# Kept apart from .venv: Feast pins its own pyspark/pandas/pyarrow ranges.
set -euo pipefail
cd "$(dirname "$0")"
FEAST_VERSION="${FEAST_VERSION:-0.67.0}"
PYTHON="${PYTHON:-python3.11}"
command -v uv >/dev/null || "$PYTHON" -m pip install -q uv
uv venv -q --allow-existing --python "$PYTHON" .venv-feast
uv pip install -q --python .venv-feast/bin/python "feast[spark]==${FEAST_VERSION}"
.venv-feast/bin/python -c "import feast, pyspark; print('feast', feast.__version__, 'pyspark', pyspark.__version__)"
