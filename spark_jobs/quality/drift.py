"""Feature drift: how far a run's staged values moved from those of the trailing weeks.

For each drift column of a table (``Table.drift_columns``) the published rows of the
``window_days`` days before the run are cut into bins at their deciles; the reference
is each bin's share of those rows. The gate's ``expect_column_psi_to_be_at_most``
(``gx_expectations``) counts the staged rows of the run's own days in the same bins and
computes the population stability index,

    PSI = sum over bins of (staged share - reference share) * ln(staged / reference),

a warn-level expectation: 0.1 is a small shift, above 0.25 (the default limit) the
distribution has moved. Columns with many equal values (zeros) have fewer bins, since
equal deciles collapse into one edge.

The reference costs two Spark jobs over the trailing days: the deciles of every drift
column at once, then every column's bin counts at once. Without enough reference rows
(the first days of a lakehouse) the expectation has no edges and passes, observing none.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

DECILES = tuple(n / 10 for n in range(1, 10))
# A bin with no rows on one side would make the index infinite: shares are floored here.
SHARE_FLOOR = 1e-4
# Suite parameter names: drift_edges__<column>, drift_shares__<column>.
EDGES_PREFIX = "drift_edges__"
SHARES_PREFIX = "drift_shares__"
PSI_LIMIT_PARAMETER = "drift_max_psi"


def parameter_columns(needed: set[str]) -> list[str]:
    """The drift columns a suite asks parameters for."""
    prefixes = (EDGES_PREFIX, SHARES_PREFIX)
    return sorted({n.removeprefix(p) for n in needed for p in prefixes if n.startswith(p)})


def bin_conditions(column: Column, edges: Sequence[float]) -> list[Column]:
    """One condition per bin: below the first edge, between two edges, from the last on.

    Bins are closed below: a value equal to an edge falls in the bin that starts there.
    Nulls fall in none.
    """
    if not edges:
        return [column.isNotNull()]
    conditions = [column < edges[0]]
    conditions += [(column >= low) & (column < high) for low, high in itertools.pairwise(edges)]
    conditions.append(column >= edges[-1])
    return conditions


def bin_counts(column: Column, edges: Sequence[float]) -> Column:
    """An aggregate: the rows in each bin, as an array (one Spark aggregation)."""
    from pyspark.sql import functions as F

    return F.array(
        *[F.sum(F.when(c, F.lit(1)).otherwise(F.lit(0))) for c in bin_conditions(column, edges)]
    )


def psi(reference_shares: Sequence[float], counts: Sequence[int]) -> float | None:
    """The population stability index of ``counts`` against the reference shares.

    None when there are no counted rows or the bins do not match.
    """
    total = sum(counts)
    if total <= 0 or len(counts) != len(reference_shares):
        return None
    index = 0.0
    for expected, count in zip(reference_shares, counts, strict=True):
        actual = max(count / total, SHARE_FLOOR)
        expected = max(expected, SHARE_FLOOR)
        index += (actual - expected) * math.log(actual / expected)
    return round(index, 6)


def reference(
    published: DataFrame | None,
    columns: Sequence[str],
    day_column: str,
    start: dt.date,
    window_days: int,
    min_rows: int,
) -> dict[str, Any]:
    """Edges and shares of each column over the ``window_days`` days before ``start``.

    Returns the suite parameters: ``drift_edges__<column>`` (sorted, distinct deciles) and
    ``drift_shares__<column>`` (each bin's share of the reference rows). With fewer than
    ``min_rows`` non-null reference values a column gets no edges (no check).
    """
    from pyspark.sql import functions as F

    values: dict[str, Any] = {}
    for column in columns:
        values[EDGES_PREFIX + column] = []
        values[SHARES_PREFIX + column] = []
    if published is None or not columns:
        return values
    first = start - dt.timedelta(days=window_days)
    window = published.where(
        (F.col(day_column) >= F.lit(first)) & (F.col(day_column) < F.lit(start))
    ).select(*[F.col(c).cast("double").alias(c) for c in columns])
    quantiles = window.approxQuantile(list(columns), list(DECILES), 0.001)
    edges = {c: sorted({round(q, 6) for q in qs}) for c, qs in zip(columns, quantiles, strict=True)}
    counted = [bin_counts(F.col(c), edges[c]).alias(c) for c in columns]
    [row] = window.agg(*counted).collect()
    for column in columns:
        counts = [int(n or 0) for n in row[column]]
        total = sum(counts)
        if total < min_rows or not edges[column]:
            continue
        values[EDGES_PREFIX + column] = edges[column]
        values[SHARES_PREFIX + column] = [round(n / total, 6) for n in counts]
    return values
