"""The real UCI log end to end (quick profile): realised churn per decile of predicted risk, list and report."""

import sys
from pathlib import Path

import pytest

from conftest import SHARED_RETAIL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_RETAIL.exists(), reason="../shared/data/online_retail is not present"),
]


def test_uci_risk_deciles_are_monotone_at_the_top_and_the_report_is_written(tmp_path, monkeypatch):
    from uci_serving import run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run(tmp_path, "quick")
    deciles = result["deciles"]
    churn = deciles["realised_churn"].tolist()
    assert len(deciles) == 10 and deciles["customers"].sum() == len(result["labelled"].scores)
    assert churn[0] > churn[1] > churn[2] > churn[3]  # the list is monotone in the top deciles
    assert churn[0] > 2 * churn[-1]
    assert result["latest"].manifest["comparison"]["previous_as_of"] == "2011-09-01"
    assert result["report"].exists() and "Since the run of 2011-09-01" in result["report"].read_text()
