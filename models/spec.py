"""The feature spec a model expects: which columns, which are categorical. It travels with the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from features.definitions import available_features


@dataclass(frozen=True)
class FeatureSpec:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @classmethod
    def union(cls, *specs: FeatureSpec) -> FeatureSpec:
        """Every column any of the specs takes, each once, in first-seen order."""
        return cls(
            *(tuple(dict.fromkeys(c for s in specs for c in getattr(s, kind))) for kind in ("numeric", "categorical"))
        )

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(tuple(data["numeric"]), tuple(data["categorical"]))


def spec_for_columns(columns) -> FeatureSpec:
    """The model inputs for a feature table with these columns (catalogue order)."""
    present = set(columns)
    from features.contract import OPTIONAL

    # every catalogue model input the table has
    feats = [f for f in available_features(OPTIONAL) if f.name in present and f.model_input]
    return FeatureSpec(tuple(f.name for f in feats if not f.categorical), tuple(f.name for f in feats if f.categorical))


def model_input(frame, spec: FeatureSpec):
    """The columns a model takes, with stable dtypes (float numerics, object categoricals).

    Built column by column into one new frame: a per-column ``astype`` on a wide frame costs
    milliseconds even for one row, which the REST service pays on every request.
    """
    import numpy as np
    import pandas as pd

    numeric = list(spec.numeric)
    try:
        block = frame[numeric].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):  # text that holds numbers
        block = (
            np.column_stack([pd.to_numeric(frame[c]).to_numpy(dtype="float64", na_value=np.nan) for c in numeric])
            if numeric
            else None
        )
    out = pd.DataFrame(
        block, index=frame.index, columns=numeric
    )  # one float block: later row stacking and selection stay cheap
    text = {
        c: pd.Series(np.where(pd.isna(v := frame[c].to_numpy(dtype=object)), None, v), index=frame.index, dtype=object)
        for c in spec.categorical
    }
    if "customer_id" in frame.columns:
        text["customer_id"] = frame["customer_id"]
    return (
        pd.concat([out, pd.DataFrame(text, index=frame.index)], axis=1) if text else out
    )  # one concat, not a column at a time
