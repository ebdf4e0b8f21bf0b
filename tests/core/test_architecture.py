"""The layer rule of docs/ARCHITECTURE.md, checked on the real source tree."""

from __future__ import annotations

import ast

from devtools import import_graph


def test_no_import_breaks_the_layer_rule() -> None:
    assert import_graph.violations(import_graph.modules()) == []


def test_the_rule_catches_a_job_importing_a_job_and_a_lower_layer_reaching_up(tmp_path) -> None:
    for folder in (
        "spark_jobs/jobs",
        "spark_jobs/transforms",
        "include",
        "dags",
        "plugins",
        "devtools",
    ):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "spark_jobs/jobs/a.py").write_text("from spark_jobs.jobs.b import x\n")
    (tmp_path / "spark_jobs/jobs/b.py").write_text("x = 1\n")
    (tmp_path / "spark_jobs/transforms/t.py").write_text(
        "def f():\n    from spark_jobs.jobs import b\n"
    )
    (tmp_path / "include/op.py").write_text("import devtools.demo\n")
    (tmp_path / "devtools/demo.py").write_text("")
    original = import_graph.PROJECT_ROOT
    import_graph.PROJECT_ROOT = tmp_path
    try:
        broken = import_graph.violations(import_graph.modules(tmp_path))
    finally:
        import_graph.PROJECT_ROOT = original
    assert broken == [
        "include.op -> devtools.demo: production code imports devtools",
        "spark_jobs.jobs.a -> spark_jobs.jobs.b: a job imports another job",
        "spark_jobs.transforms.t -> spark_jobs.jobs.b: transforms imports the higher layer jobs",
    ]


def test_production_code_never_edits_sys_path() -> None:
    edits = []
    for module in import_graph.modules().values():
        if module.name.split(".")[0] not in import_graph.PRODUCTION:
            continue
        for node in ast.walk(ast.parse(module.path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                edits.append(f"{module.name}:{node.lineno}")
    assert edits == []
