"""Great Expectations is imported in the background while a gated run builds, and only there."""

from __future__ import annotations

import json
import subprocess
import sys

from spark_jobs.config import PROJECT_ROOT

PROBE = """
import json, sys, threading
from spark_jobs.quality import gx_runner, wap
wap.prepare_gates(sys.argv[1])
started = [t.name for t in threading.enumerate() if t.name == "gx-import"]
if sys.argv[1] != "build":
    gx_runner.context()
print(json.dumps({
    "started": started,
    "gx_loaded": "great_expectations" in sys.modules,
    "still_running": [t.name for t in threading.enumerate() if t.name == "gx-import"],
}))
"""


def probe(step: str) -> dict:
    """prepare_gates(step) in a fresh process (no GX imported yet), then what it left."""
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, step],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_gated_step_imports_gx_in_the_background_and_the_gate_waits_for_it() -> None:
    for step in ("all", "publish"):
        seen = probe(step)
        assert seen["started"] == ["gx-import"], step
        assert seen["gx_loaded"] is True, step
        assert seen["still_running"] == [], step  # context() joined the import


def test_a_build_step_never_imports_gx() -> None:
    assert probe("build") == {"started": [], "gx_loaded": False, "still_running": []}
