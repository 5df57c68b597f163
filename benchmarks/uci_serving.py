"""The real UCI Online Retail log end to end: train (quick), score the last fully observed cutoff,
check the realised churn rate per decile of predicted risk, then score the latest day and report.

    python benchmarks/uci_serving.py                 # needs ../shared/data/online_retail
    python benchmarks/uci_serving.py --profile default

Outputs go to benchmarks/out/uci/ (store, MLflow, exports, reports); the decile table is printed
as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))  # the run itself lives beside the test that checks it

from uci_run import LABELLED_CUTOFF, SHARED_RETAIL, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="quick", help="quick or default")
    args = parser.parse_args()
    if not SHARED_RETAIL.exists():
        sys.exit(f"{SHARED_RETAIL} is not present.")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    out = HERE / "out" / f"uci_{args.profile}"
    result = run(out, None if args.profile == "default" else args.profile)
    print(f"champions: {result['champions']}; timings: { {k: round(v, 1) for k, v in result['timings'].items()} }")
    print(
        f"scored {len(result['labelled'].scores):,} customers as of {LABELLED_CUTOFF}; latest run "
        f"{result['latest'].manifest['as_of']} ({len(result['latest'].scores):,} customers); report {result['report']}"
    )
    print(
        f"comparison latest vs {LABELLED_CUTOFF}: "
        + str({k: v for k, v in result["latest"].manifest["comparison"].items() if k != "migration"})
    )
    print(
        result["deciles"].to_markdown(index=False, floatfmt=".3f")
        if _has_tabulate()
        else result["deciles"].round(3).to_string(index=False)
    )


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
