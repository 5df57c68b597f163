"""The Ibis features agree with the independent pandas reference in tests/pandas_reference.py."""

from datetime import date

import pandas as pd
from pandas_reference import reference_features

from features.build import build_features


def test_engine_matches_pandas_reference_on_generated_log(small_synthetic):
    tx, _, _ = small_synthetic
    log = tx.to_pandas()
    for cutoff in (date(2022, 9, 1), date(2023, 6, 1)):
        got = build_features(tx, cutoff).drop(columns=["main_channel"])
        want = reference_features(log, pd.Timestamp(cutoff))
        assert len(got) > 100
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-9)
