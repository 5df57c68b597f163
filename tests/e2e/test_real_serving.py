"""The real UCI log end to end (quick profile): trained on the nine months before 2011-09-01, scored out of time
there (realised churn per decile of predicted risk), then the latest day, list and report."""

import numpy as np
import pytest
from uci_run import SHARED_RETAIL, run

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_RETAIL.exists(), reason="../shared/data/online_retail is not present"),
]


def test_uci_risk_deciles_are_monotone_at_the_top_and_the_report_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run(tmp_path, "quick")
    deciles = result["deciles"]
    churn = deciles["realised_churn"].to_numpy()
    n = deciles["customers"].to_numpy()
    assert len(deciles) == 10 and n.sum() == len(result["labelled"].scores)
    assert churn[0] == churn.max() and churn[0] > 2 * churn[-1]  # the riskiest decile churns most
    # Monotone by quintile: realised churn falls from each pair of deciles to the next. Adjacent deciles (~330
    # customers, SE ~0.026) may swap by a few customers: since cb85072 the random forest champion's deciles 2 and
    # 3 churned 0.648 and 0.657. A rise beyond noise is what the next line refuses.
    quintiles = (churn * n).reshape(5, 2).sum(axis=1) / n.reshape(5, 2).sum(axis=1)
    assert all(quintiles[i] > quintiles[i + 1] for i in range(4)), quintiles
    se = np.sqrt(churn * (1 - churn) / n)
    assert all(churn[i + 1] - churn[i] < 2 * np.hypot(se[i], se[i + 1]) for i in range(9))  # nowhere a real rise
    assert churn[:3].mean() > churn[3:6].mean() > churn[6:].mean()
    assert result["latest"].manifest["comparison"]["previous_as_of"] == "2011-09-01"
    assert result["report"].exists() and "Since the run of 2011-09-01" in result["report"].read_text()
