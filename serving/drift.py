"""What changed since the previous scoring run: segment migration and the population stability of the scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_BINS = 10


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``actual`` against ``expected``, on the expected distribution's deciles.

    Rule of thumb: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a large shift.
    """
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, "right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, "right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _score_psi(previous: pd.Series, current: pd.Series) -> float | None:
    """PSI of a score column, or None when either run scored it without a model (all missing)."""
    if previous.isna().all() or current.isna().all():
        return None
    return psi(previous.dropna().to_numpy(), current.dropna().to_numpy())


def segment_migration(previous: pd.DataFrame, current: pd.DataFrame, column: str = "rfm_segment") -> pd.DataFrame:
    """Customers scored in both runs, counted by (from, to) segment; new and gone customers have their own rows."""
    both = previous[["customer_id", column]].merge(
        current[["customer_id", column]], on="customer_id", how="outer", suffixes=("_from", "_to")
    )
    both = both.fillna({f"{column}_from": "(new)", f"{column}_to": "(gone)"})
    table = both.groupby([f"{column}_from", f"{column}_to"]).size().rename("customers").reset_index()
    return table.rename(columns={f"{column}_from": "from", f"{column}_to": "to"}).sort_values(
        "customers", ascending=False, ignore_index=True
    )


def compare_runs(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict:
    if previous is None or previous.empty:
        return {"previous_as_of": None}
    migration = segment_migration(previous, current)
    stayed = migration[(migration["from"] == migration["to"])]["customers"].sum()
    kept = migration[~migration["from"].eq("(new)") & ~migration["to"].eq("(gone)")]["customers"].sum()
    return {
        "previous_as_of": str(pd.Timestamp(previous["as_of"].iloc[0]).date()),
        **{f"psi_{c}": _score_psi(previous[c], current[c]) for c in ("p_churn", "p_purchase")},
        "customers_in_both": int(kept),
        "customers_moved_segment": int(kept - stayed),
        "customers_new": int(migration[migration["from"] == "(new)"]["customers"].sum()),
        "customers_gone": int(migration[migration["to"] == "(gone)"]["customers"].sum()),
        "migration": migration.to_dict("records"),
    }
