"""The folded log: what every feature and label build starts from, computed from the lines or read from the store.

``features.folds`` defines the folds as Ibis expressions over the line-level log: invoice events (one row per
customer invoice and timestamp), purchase days, and product times (how many products each customer bought for
the first and the second time at each purchase time). A build over raw lines (a REST request, Spark, a test's
table) computes them inside its query. The store materialises the same expressions once per load
(``write_folds``, inside the load's transaction), with a dense integer key per customer, so that a build reads a
small share of the rows and every aggregation hashes integers; ``restore`` puts the customer ids back on the
result. Results are identical either way (tests/unit/test_folded_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from features.cutoffs import KEYS
from features.folds import invoice_facts, product_firsts, product_times, purchase_days

EVENTS, DAYS, PRODUCTS = "folded_events", "folded_days", "folded_product_times"
OLD_PRODUCTS = "folded_products"  # the customer x product firsts, stored by the sixth and seventh sessions' code
CUSTOMERS, INFO = "folded_customers", "folded_info"


@dataclass(frozen=True)
class Folded:
    """The folded log. ``customers`` maps the integer key that ``customer_id`` holds in the folds back to the id
    (None: the folds hold the ids themselves). ``columns``: the log's canonical columns (which features apply)."""

    lines: ir.Table
    events: ir.Table
    days: ir.Table
    products: ir.Table | None
    columns: frozenset[str]
    customers: ir.Table | None = None

    def restore(self, table: ir.Table) -> ir.Table:
        """``table`` with the customer ids in place of the integer keys, columns in the same order."""
        if self.customers is None:
            return table
        ids = self.customers
        joined = table.join(ids, table.customer_id == ids.customer_key)
        return joined.select(*(ids.customer_id if c == "customer_id" else joined[c] for c in table.columns))

    def finish(self, result: pa.Table) -> pa.Table:
        """A fetched result keyed as the folds are, ordered by customer and cutoff, with the customer ids.

        The keys number the ids in their sorted order, so the key order is the id order and the ids are a
        ``take`` by key: no join of the wide result with a million ids. The result is sorted by Arrow, outside
        DuckDB's memory limit: DuckDB's sort of a million 40-column rows ran out of the default 500 MB."""
        result = result.sort_by([(key, "ascending") for key in KEYS])
        if self.customers is None:
            return result
        con = self.customers._find_backend().con  # the store's table: plain SQL, no Ibis compile for every build
        ids = con.sql(f"SELECT customer_id FROM {self.customers.op().name} ORDER BY customer_key").to_arrow_table()
        ids = ids["customer_id"].cast(pa.string())
        column = result.schema.get_field_index("customer_id")
        return result.set_column(column, "customer_id", ids.take(result["customer_id"]))


def fold(log: ir.Table | Folded) -> Folded:
    """The folds of a line-level log, as expressions (a ``Folded`` is returned as it is)."""
    if isinstance(log, Folded):
        return log
    products = product_times(product_firsts(log)) if "product_id" in log.columns else None
    events = invoice_facts(log)
    return Folded(log, events, purchase_days(events), products, frozenset(log.columns))


def write_folds(con: duckdb.DuckDBPyConnection, table: str = "transactions") -> None:
    """Materialise the folds of ``table`` in the store (replacing earlier ones). Call it inside the transaction
    that writes ``table``, so that the folds never describe another version of the log."""
    lines = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    con.execute(
        f"CREATE OR REPLACE TABLE {CUSTOMERS} AS SELECT CAST(row_number() OVER (ORDER BY customer_id) - 1 AS BIGINT)"
        f" AS customer_key, customer_id FROM (SELECT DISTINCT customer_id FROM {table}) ORDER BY customer_key"
    )
    backend = ibis.duckdb.from_connection(con)
    tx, ids = backend.table(table), backend.table(CUSTOMERS)
    keyed = tx.join(ids, tx.customer_id == ids.customer_id).select(
        *(ids.customer_key.name("customer_id") if c == "customer_id" else tx[c] for c in tx.columns)
    )
    folded = fold(keyed)
    events = folded.events.drop("invoice_id").order_by(["customer_id", "ts_s"])
    con.execute(f"CREATE OR REPLACE TABLE {EVENTS} AS {backend.compile(events)}")
    days = purchase_days(backend.table(EVENTS)).order_by(["customer_id", "day"])  # from the stored events
    con.execute(f"CREATE OR REPLACE TABLE {DAYS} AS {backend.compile(days)}")
    if folded.products is not None:
        products = folded.products.order_by(["customer_id", "ts_s"])
        con.execute(f"CREATE OR REPLACE TABLE {PRODUCTS} AS {backend.compile(products)}")
    else:
        con.execute(f"DROP TABLE IF EXISTS {PRODUCTS}")
    con.execute(f"DROP TABLE IF EXISTS {OLD_PRODUCTS}")
    con.execute(f"CREATE OR REPLACE TABLE {INFO} AS SELECT {lines}::BIGINT AS lines, ? AS columns", [list(tx.columns)])


def stored_folds(con: duckdb.DuckDBPyConnection, table: str = "transactions") -> Folded | None:
    """The store's folds of ``table``, or None when it has none that describe it (a store written before the
    folds existed, or a table written without them): builds then fold the lines themselves."""
    names = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if INFO not in names or table not in names:
        return None
    folded_lines, columns = con.execute(f"SELECT lines, columns FROM {INFO}").fetchall()[0]
    if folded_lines != con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]:
        return None
    backend = ibis.duckdb.from_connection(con)
    products = backend.table(PRODUCTS) if PRODUCTS in names else None
    if OLD_PRODUCTS in names and products is None:  # folded before product times were
        products = product_times(backend.table(OLD_PRODUCTS))
    events = backend.table(EVENTS)
    days = backend.table(DAYS) if DAYS in names else purchase_days(events)  # folded before purchase days were
    return Folded(backend.table(table), events, days, products, frozenset(columns), backend.table(CUSTOMERS))
