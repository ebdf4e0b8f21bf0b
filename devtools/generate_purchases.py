"""Sample landing data for the demo, tests and benchmarks: the entry module.

    python -m devtools.generate_purchases --root R --start 2026-03-01 --end 2026-03-30

The generator lives in ``devtools.sample_data`` (one module per concern, listed in its
docstring); this module keeps the command and the names callers import from it.
docs/GENERATOR.md describes the options and every defect.
"""

from __future__ import annotations

from devtools.sample_data.cli import main
from devtools.sample_data.defects import DAY_DEFECTS, DEFECT_KINDS, EXPECTED_REASON
from devtools.sample_data.generator import generate
from devtools.sample_data.plan import missing_days
from devtools.sample_data.scenario import Rates, mean_items_per_order
from devtools.sample_data.summary import DaySummary, GenerationSummary
from spark_jobs.cli import run_cli

__all__ = [
    "DAY_DEFECTS",
    "DEFECT_KINDS",
    "EXPECTED_REASON",
    "DaySummary",
    "GenerationSummary",
    "Rates",
    "generate",
    "main",
    "mean_items_per_order",
    "missing_days",
]

if __name__ == "__main__":
    run_cli(main)
