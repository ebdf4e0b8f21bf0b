"""The lakehouse's own Great Expectations expectations, in Spark SQL.

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

``expect_column_psi_to_be_at_most`` is a column aggregate: the population stability
index (``spark_jobs.quality.drift``) of the column's values on the rows of the run's own
days, against reference bins (``edges``) and their ``reference_shares``. Its bin counts
are one more aggregate of GX's single aggregate query. Without edges (no reference yet)
it passes and observes none.

Importing this module registers the expectations and their metrics with GX; ``gates``
does it before it builds any suite.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.compatibility.pyspark import functions as F
from great_expectations.execution_engine import SparkDFExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnAggregateExpectation,
    ColumnMapExpectation,
)
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_partial,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.render.renderer_configuration import (
    RendererConfiguration,
    RendererValueType,
)

from spark_jobs.quality import drift

CONDITION_METRIC = "column_values.satisfy_condition"
PSI_METRIC = "column.psi_bin_counts"


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


class ColumnPsiBinCounts(ColumnAggregateMetricProvider):
    """Rows per reference bin, over the rows whose ``day_column`` is ``first_day`` or later."""

    metric_name = PSI_METRIC
    value_keys = ("edges", "day_column", "first_day")

    @column_aggregate_partial(engine=SparkDFExecutionEngine)
    def _spark(
        cls,
        column: Any,
        edges: list | None = None,
        day_column: str | None = None,
        first_day: str | None = None,
        **kwargs: Any,
    ) -> Any:
        value = column.cast("double")
        if day_column and first_day:
            # Outside the run's days the value counts in no bin.
            value = F.when(F.col(day_column) >= F.lit(first_day).cast("date"), value)
        return drift.bin_counts(value, list(edges or []))


class ExpectColumnPsiToBeAtMost(ColumnAggregateExpectation):
    """Expect the population stability index against the reference bins to be <= max_psi."""

    edges: list | dict
    reference_shares: list | dict
    max_psi: float | dict = 0.25
    day_column: str | None = None
    first_day: str | dict | None = None

    metric_dependencies = (PSI_METRIC,)
    args_keys = ("column", "edges", "reference_shares", "max_psi")
    success_keys = ("edges", "reference_shares", "max_psi", "day_column", "first_day")

    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "experimental",
        "tags": ["column aggregate expectation", "spark", "drift"],
        "contributors": ["purchase-lakehouse"],
        "requirements": [],
    }

    def _validate(
        self,
        metrics: dict,
        runtime_configuration: dict | None = None,
        execution_engine: Any = None,
    ) -> dict[str, Any]:
        if not self.edges:
            return {"success": True, "result": {"observed_value": None}}
        counts = [int(n or 0) for n in metrics[PSI_METRIC]]
        index = drift.psi([float(s) for s in self.reference_shares], counts)
        limit = float(self.max_psi)  # type: ignore[arg-type]
        return {
            "success": index is None or index <= limit,
            "result": {"observed_value": index, "details": {"bin_counts": counts}},
        }
