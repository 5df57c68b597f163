"""The feature expression compiled once to a DuckDB prepared statement, for many small requests (REST)."""

from __future__ import annotations

from datetime import date

import ibis
import pandas as pd

from features.build import feature_frame, features_expr
from features.cutoffs import KEYS, create_cutoff_table, cutoff_rows


class CompiledFeatures:
    """``features_expr`` compiled once to a DuckDB prepared statement over two tables it owns.

    For many small requests (the REST service): Ibis compiles in about 0.25 s and DuckDB parses and
    binds the 12 KB of SQL in about 5 ms, so both are done once. Each request then refills the
    lines table (``load``, same columns as ``like``) and the cutoff table (``set_cutoffs``) in place:
    replacing either table would invalidate the prepared statement. It is the expression
    ``build_features`` runs, so results are identical.
    """

    def __init__(self, con, like: str, name: str, lookback_days: int = 365):
        self.table, self.cutoffs, self.statement = f"{name}_lines", f"{name}_cutoffs", f"{name}_features"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {self.table} AS SELECT * FROM {like} LIMIT 0")
        create_cutoff_table(con, self.cutoffs)
        backend = ibis.duckdb.from_connection(con)
        # a request's few customers: the scoring-only features too, as batch scoring builds them
        expr = features_expr(backend.table(self.table), backend.table(self.cutoffs), lookback_days, True)
        expr = expr.order_by(KEYS)
        self.sql = str(backend.compile(expr))
        self.schema = (
            expr.schema()
        )  # DuckDB's own result types can be wider (an integer sum is HUGEINT); Ibis narrows them
        con.execute(f"PREPARE {self.statement} AS {self.sql}")
        self.current: list[date] | None = []  # the cutoffs in the table

    def load(self, con, select: str) -> None:
        """Replace the lines with the rows of ``select`` (the same columns, in order)."""
        con.execute(f"DELETE FROM {self.table}")
        con.execute(f"INSERT INTO {self.table} {select}")

    def set_cutoffs(self, con, cutoffs: list[date]) -> None:
        """Replace the cutoffs (nothing to do when they are the ones already there)."""
        if list(cutoffs) == self.current:
            return
        self.current = None  # unknown until the refill below has committed
        rows = pd.DataFrame(cutoff_rows(cutoffs)).astype({"as_of": "datetime64[us]"})
        con.register("cutoff_rows_frame", rows)
        try:
            con.execute(f"DELETE FROM {self.cutoffs}")
            con.execute(f"INSERT INTO {self.cutoffs} SELECT * FROM cutoff_rows_frame")
        finally:
            con.unregister("cutoff_rows_frame")
        self.current = list(cutoffs)

    def run(self, con) -> pd.DataFrame:
        from ibis.backends.duckdb.converter import DuckDBPandasData

        return feature_frame(DuckDBPandasData.convert_table(con.execute(f"EXECUTE {self.statement}").df(), self.schema))

    def close(self, con) -> None:
        con.execute(f"DEALLOCATE {self.statement}")
        con.execute(f"DROP TABLE IF EXISTS {self.table}")
        con.execute(f"DROP TABLE IF EXISTS {self.cutoffs}")
