"""A seeded synthetic transaction log with the structure of real retail data.

Customers arrive uniformly over the period. Each buys as a Poisson process with a gamma-distributed
rate (thinned by a yearly seasonality peaking in November) and drops out after each purchase with a
beta-distributed probability, as in BG/NBD (Fader, Hardie & Lee 2005). Invoices have several lines;
products follow a Zipf-like popularity with lognormal prices; quantities and basket sizes vary per
customer (a few wholesalers); some lines are returned later on a cancellation invoice ("C" prefix).
Everything is vectorised (numpy + Arrow): 10M lines take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86400
COUNTRIES = ["United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland"]
COUNTRY_WEIGHTS = [0.80, 0.05, 0.04, 0.03, 0.02, 0.02, 0.02, 0.02]
CHANNELS = ["web", "app", "store"]


@dataclass(frozen=True)
class SyntheticConfig:
    n_customers: int = 10_000
    start: date = date(2022, 1, 1)
    end: date = date(2023, 12, 31)
    seed: int = 42
    r: float = 0.9  # gamma shape of purchase rates
    alpha: float = 30.0  # gamma scale (days): mean rate r/alpha per day
    a: float = 1.0  # beta dropout
    b: float = 6.0
    lines_per_invoice: float = 8.0
    n_products: int = 3_000
    return_rate: float = 0.02
    dirty_share: float = 0.0  # share of lines corrupted on purpose (to exercise validation)
    target_lines: int | None = None  # when set, basket sizes are scaled to give about this many lines


def _seasonality(day_of_year: np.ndarray) -> np.ndarray:
    """Relative intensity in [0.6, 1.4], peaking mid-November."""
    return 1.0 + 0.4 * np.cos(2 * np.pi * (day_of_year - 320) / 365.25)


def _group_rank(sorted_groups: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal (sorted) group ids."""
    n = len(sorted_groups)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, lengths)


def _invoices(cfg: SyntheticConfig, rng: np.random.Generator):
    n = cfg.n_customers
    t0 = (cfg.start - date(1970, 1, 1)).days * DAY
    span = (cfg.end - cfg.start).days * DAY + DAY
    birth = rng.uniform(0, span, n)
    rate = np.minimum(rng.gamma(cfg.r, 1.0 / cfg.alpha, n), 0.5) / DAY  # per second
    p_drop = rng.beta(cfg.a, cfg.b, n)
    # Purchases a customer makes before dropping out (first included): geometric.
    lifetime_purchases = rng.geometric(p_drop)
    # Candidate repeat purchases: Poisson at the peak rate, thinned by seasonality.
    n_cand = rng.poisson(rate * 1.4 * (span - birth))
    cust = np.repeat(np.arange(n), n_cand)
    when = birth[cust] + rng.uniform(0, 1, len(cust)) * (span - birth[cust])
    doy = ((t0 + when) / DAY - 0) % 365.25
    keep = rng.uniform(0, 1.4, len(cust)) < _seasonality(doy)
    cust, when = cust[keep], when[keep]
    order = np.lexsort((when, cust))
    cust, when = cust[order], when[order]
    alive = _group_rank(cust) < (lifetime_purchases[cust] - 1)
    cust = np.r_[np.arange(n), cust[alive]]
    when = np.r_[birth, when[alive]]
    # Shop hours 08:00-20:00, to the minute.
    day_start = np.floor((t0 + when) / DAY) * DAY
    ts = day_start + 8 * 3600 + rng.integers(0, 12 * 60, len(when)) * 60
    order = np.argsort(ts, kind="stable")
    return cust[order], ts[order].astype(np.int64)


def generate(cfg: SyntheticConfig = SyntheticConfig()) -> pa.Table:
    """The synthetic log as an Arrow table with canonical column names."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_customers
    inv_cust, inv_ts = _invoices(cfg, rng)
    n_inv = len(inv_cust)
    # Customer traits.
    mean_lines = (
        1.27 * cfg.target_lines / n_inv if cfg.target_lines else cfg.lines_per_invoice
    )  # 1.27: repeated products are removed below
    basket = rng.lognormal(np.log(max(mean_lines, 1.0)) - 0.18, 0.6, n)  # -0.18 = -sigma^2/2: mean stays mean_lines
    qty_level = rng.lognormal(np.log(2.0), 1.0, n)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    channel = rng.choice(len(CHANNELS), n, p=[0.6, 0.25, 0.15])
    # Lines.
    n_lines = 1 + rng.poisson(np.maximum(basket[inv_cust] - 1, 0))
    line_inv = np.repeat(np.arange(n_inv), n_lines)
    line_cust = inv_cust[line_inv]
    popularity = 1.0 / np.arange(1, cfg.n_products + 1) ** 1.1
    product = np.searchsorted(np.cumsum(popularity / popularity.sum()), rng.uniform(0, 1, len(line_inv)))
    product = np.minimum(product, cfg.n_products - 1)
    # A product appears once per invoice (its quantity carries the amount), as on real invoices.
    _, first = np.unique(line_inv.astype(np.int64) * cfg.n_products + product, return_index=True)
    first.sort()
    line_inv, product = line_inv[first], product[first]
    line_cust = inv_cust[line_inv]
    price_of = np.round(rng.lognormal(np.log(2.5), 0.8, cfg.n_products), 2) + 0.01
    quantity = 1 + rng.poisson(qty_level[line_cust])
    invoice_no = 100_000 + line_inv
    ts = inv_ts[line_inv]
    # Returns: a later cancellation invoice with the negated quantity.
    ret = np.flatnonzero(rng.uniform(0, 1, len(line_inv)) < cfg.return_rate)
    end_s = ((cfg.end - date(1970, 1, 1)).days + 1) * DAY
    ret_ts = ts[ret] + rng.integers(1, 30, len(ret)) * DAY
    ret = ret[ret_ts < end_s]
    ret_ts = ret_ts[ret_ts < end_s]
    is_ret = np.r_[np.zeros(len(line_inv), bool), np.ones(len(ret), bool)]
    all_idx = np.r_[np.arange(len(line_inv)), ret]
    cust_all = line_cust[all_idx]
    invoice = pa.array(invoice_no[all_idx]).cast(pa.string())
    invoice = pc.if_else(pa.array(is_ret), pc.binary_join_element_wise("C", invoice, ""), invoice)
    table = pa.table(
        {
            "customer_id": pa.array(10_000 + cust_all).cast(pa.string()),
            "invoice_id": invoice,
            "ts": pa.array(np.r_[ts, ret_ts] * 1_000_000, pa.timestamp("us")),
            "quantity": pa.array(np.where(is_ret, -quantity[all_idx], quantity[all_idx]).astype(np.float64)),
            "unit_price": pa.array(price_of[product[all_idx]]),
            "product_id": pa.DictionaryArray.from_arrays(
                product[all_idx].astype(np.int32), pa.array([f"P{i:05d}" for i in range(cfg.n_products)])
            ),
            "country": pa.DictionaryArray.from_arrays(country[cust_all].astype(np.int32), pa.array(COUNTRIES)),
            "channel": pa.DictionaryArray.from_arrays(channel[cust_all].astype(np.int32), pa.array(CHANNELS)),
        }
    )
    if cfg.dirty_share > 0:
        table = _make_dirty(table, cfg.dirty_share, rng)
    return table


def _make_dirty(table: pa.Table, share: float, rng: np.random.Generator) -> pa.Table:
    """Corrupt a share of lines the way real exports are corrupt: no customer, zero price, duplicates."""
    n = table.num_rows
    k = max(3, int(n * share))
    picks = rng.choice(n, k, replace=False)
    kind = picks % 3
    cust = table["customer_id"].combine_chunks().to_numpy(zero_copy_only=False).astype(object)
    price = table["unit_price"].to_numpy().copy()
    cust[picks[kind == 0]] = None
    price[picks[kind == 1]] = 0.0
    table = table.set_column(0, "customer_id", pa.array(cust, pa.string()))
    table = table.set_column(table.schema.get_field_index("unit_price"), "unit_price", pa.array(price))
    dupes = table.take(pa.array(np.sort(picks[kind == 2])))
    return pa.concat_tables([table, dupes])


def lines_to_customers(n_lines: int) -> int:
    """About 10k customers per million lines, as the benchmarks specify."""
    return max(10, n_lines // 100)


def generate_lines(n_lines: int, seed: int = 42, **overrides) -> pa.Table:
    """A log of roughly ``n_lines`` lines (within a few percent)."""
    cfg = SyntheticConfig(n_customers=lines_to_customers(n_lines), seed=seed, target_lines=n_lines, **overrides)
    return generate(cfg)
