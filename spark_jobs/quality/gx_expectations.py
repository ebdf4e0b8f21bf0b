"""The lakehouse's own Great Expectations expectation: a row-level condition in Spark SQL.

``expect_column_values_to_satisfy_condition`` checks, for every row whose ``column`` is
not null, that a Spark SQL boolean ``condition`` over the row holds (it may name any
column of the row; a condition that evaluates to null counts as unexpected). It is a
column map expectation, so GX computes its unexpected count as one more aggregate of the
single query it already runs for every column map expectation of the batch: a passing
check costs no Spark job of its own. GX's ``unexpected_rows_expectation`` (a SQL query
per check: a count, then a fetch of up to 200 rows, each a scan) and the column-pair
expectations (two counts per check: unexpected rows, rows considered) cost two or more
scans each, which made a gate cost about as much as the stage it guards.

Examples in a failure's report are values of ``column``: name the column the condition
is about (e.g. ``amount_usd`` for "amount_usd is quantity x unit_price x rate").

Importing this module registers the expectation and its metric with GX; ``gates`` does it
before it builds any suite.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.compatibility.pyspark import functions as F
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.render.renderer_configuration import (
    RendererConfiguration,
    RendererValueType,
)

CONDITION_METRIC = "column_values.satisfy_condition"


class ColumnValuesSatisfyCondition(ColumnMapMetricProvider):
    """True for the rows where the Spark SQL ``condition`` holds (null counts as false)."""

    condition_metric_name = CONDITION_METRIC
    condition_value_keys = ("condition",)

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, condition: str, **kwargs: Any) -> Any:
        return F.coalesce(F.expr(condition), F.lit(False))


class ExpectColumnValuesToSatisfyCondition(ColumnMapExpectation):
    """Expect a Spark SQL condition over each row to hold where ``column`` is not null."""

    condition: str

    map_metric = CONDITION_METRIC
    args_keys = ("column", "condition")
    domain_keys: ClassVar[tuple[str, ...]] = ("column", "row_condition", "condition_parser")
    success_keys = ("condition", "mostly")

    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "experimental",
        "tags": ["column map expectation", "spark"],
        "contributors": ["purchase-lakehouse"],
        "requirements": [],
    }

    @classmethod
    def _prescriptive_template(
        cls, renderer_configuration: RendererConfiguration
    ) -> RendererConfiguration:
        for name, kind in (
            ("column", RendererValueType.STRING),
            ("condition", RendererValueType.STRING),
            ("mostly", RendererValueType.NUMBER),
        ):
            renderer_configuration.add_param(name=name, param_type=kind)
        template = "rows must satisfy $condition"
        params = renderer_configuration.params
        if params.mostly and params.mostly.value < 1.0:
            renderer_configuration = cls._add_mostly_pct_param(
                renderer_configuration=renderer_configuration
            )
            template += ", at least $mostly_pct % of the time"
        template += "."
        if renderer_configuration.include_column_name:
            template = f"Where $column is not null, {template}"
        renderer_configuration.template_str = template
        return renderer_configuration
