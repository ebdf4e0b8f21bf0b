"""The project's import graph, and the layer rule it must keep.

    python -m devtools.import_graph            # one line per module: lines, then imports
    python -m devtools.import_graph --check    # exit 1 and list each import against the rule

Layers of ``spark_jobs``, lowest first (docs/ARCHITECTURE.md has the picture):

    core        spark_jobs/*.py: config, cli, names, reasons, catalog, session,
                connect_server, artifacts
    storage     spark_jobs/storage/
    ops         spark_jobs/ops/: run metrics and the operations report
    transforms  spark_jobs/transforms/
    quality     spark_jobs/quality/
    training    spark_jobs/training/
    jobs        spark_jobs/jobs/

A module may import its own layer and the layers below it, never one above; a job never
imports another job. ``include``, ``dags`` and ``plugins`` (the Airflow side) sit on top and
never reach into ``spark_jobs.jobs`` (they run jobs through spark-submit); no production
module imports ``devtools`` (sample data, the local Airflow, the demo).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spark_jobs", "include", "dags", "plugins", "devtools")
PRODUCTION = ("spark_jobs", "include", "dags", "plugins")
LAYERS = ("core", "storage", "ops", "transforms", "quality", "training", "jobs")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    lines: int
    imports: tuple[str, ...]


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PROJECT_ROOT) -> dict[str, Module]:
    """Every module of the project's packages with the project modules it imports."""
    paths = [p for package in PACKAGES for p in sorted((root / package).rglob("*.py"))]
    names = {module_name(p) for p in paths}
    found: dict[str, Module] = {}
    for path in paths:
        name = module_name(path)
        source = path.read_text(encoding="utf-8")
        found[name] = Module(
            name, path, len(source.splitlines()), tuple(sorted(set(_imports(name, source, names))))
        )
    return found


def _imports(name: str, source: str, names: set[str]) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            base = node.module
            if node.level:
                base = ".".join([*name.split(".")[: -node.level], base])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES and target != name:
                yield target


def layer(name: str) -> str | None:
    """The layer of a ``spark_jobs`` module, or None outside the package."""
    parts = name.split(".")
    if parts[0] != "spark_jobs":
        return None
    if len(parts) > 2 and parts[1] in LAYERS:
        return parts[1]
    if len(parts) == 2 and parts[1] in LAYERS:  # the layer package itself
        return parts[1]
    return "core"


def violations(found: dict[str, Module]) -> list[str]:
    """Every import that breaks the layer rule, as ``importer -> imported: why``."""
    broken: list[str] = []
    for module in found.values():
        top = module.name.split(".")[0]
        for target in module.imports:
            target_top = target.split(".")[0]
            why = None
            if top in PRODUCTION and target_top == "devtools":
                why = "production code imports devtools"
            elif top == "spark_jobs" and target_top != "spark_jobs":
                why = "spark_jobs imports the Airflow side"
            elif top in ("include", "dags", "plugins") and layer(target) == "jobs":
                why = "the Airflow side runs jobs by spark-submit, never by import"
            elif top == "spark_jobs":
                mine, theirs = layer(module.name), layer(target)
                assert mine is not None and theirs is not None
                if LAYERS.index(theirs) > LAYERS.index(mine):
                    why = f"{mine} imports the higher layer {theirs}"
                elif mine == theirs == "jobs" and target != "spark_jobs.jobs":
                    why = "a job imports another job"
            if why:
                broken.append(f"{module.name} -> {target}: {why}")
    return sorted(broken)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report layer violations")
    args = parser.parse_args(argv)
    found = modules()
    if args.check:
        broken = violations(found)
        for line in broken:
            print(line)
        print(f"{len(found)} modules, {len(broken)} imports against the layer rule")
        return 1 if broken else 0
    for module in sorted(found.values(), key=lambda m: m.name):
        print(f"{module.name} ({module.lines}): {' '.join(module.imports)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
