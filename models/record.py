"""What a registered model carries: one typed record, written by training and read by serving.

It travels inside the packaged model (so a loaded model knows its population and horizon) and is
also set on the registry version as the ``record`` tag (JSON), for people browsing the registry.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from models.spec import FeatureSpec

RECORD_TAG = "record"


class ModelRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    family: str
    horizon_days: int  # the label window the model predicts
    lookback_days: int  # the population: customers with a purchase in this many days before as_of
    calibration: str = "sigmoid"
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    data_first_ts: str = ""
    data_last_ts: str = ""
    train_cutoffs: tuple[str, ...] = ()  # the as_of dates whose rows trained the registered model
    calibration_cutoffs: tuple[str, ...] = ()  # the as_of dates whose rows fitted its calibrator
    test_cutoffs: tuple[str, ...] = ()  # the held-out as_of dates of the figures below
    test_metrics: dict[str, float] = {}

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(self.numeric, self.categorical)
