"""Lists for people (CSV with a BOM, Excel) and for programs (Parquet)."""

import pandas as pd
import pytest

from features.errors import PropensityError
from serving.exports import for_people, write_list


def _list():
    return pd.DataFrame(
        {
            "rank": [1, 2],
            "customer_id": ["Zoë-7", "12347"],
            "p_churn": [0.83456, 0.1],
            "expected_value": [1234.5678, 0.004],
            "value_at_risk": [1030.3333, 0.0004],
            "action": ["Call: win-back offer (€10)", "Nurture"],
            "reason_1": ["no purchase for 120 days — usually every 30", None],
            "reason_3": pd.array([None, None], dtype="string"),  # nobody has a third reason
        }
    )


def test_people_read_headers_percentages_and_cents():
    people = for_people(_list())
    assert list(people.columns) == [
        "Rank",
        "Customer",
        "Churn risk (%)",
        "Predicted 12-month value",
        "Value at risk",
        "Suggested action",
        "Why",
        "Why (3)",
    ]
    assert people["Churn risk (%)"].tolist() == [83.5, 10.0]
    assert people["Predicted 12-month value"].tolist() == [1234.57, 0.0]
    assert people["Value at risk"].tolist() == [1030.33, 0.0]


def test_csv_has_a_bom_and_round_trips_accents_excel_and_parquet_keep_what_they_should(tmp_path):
    write_list(_list(), tmp_path / "l.csv")
    raw = (tmp_path / "l.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "Zoë-7".encode() in raw and "€10".encode() in raw
    back = pd.read_csv(tmp_path / "l.csv", encoding="utf-8-sig", dtype={"Customer": str})
    assert back["Customer"].tolist() == ["Zoë-7", "12347"] and back["Churn risk (%)"].tolist() == [83.5, 10.0]

    write_list(_list(), tmp_path / "l.xlsx")
    sheet = pd.read_excel(tmp_path / "l.xlsx", dtype={"Customer": str})
    assert sheet["Why"].iloc[0].startswith("no purchase") and sheet["Value at risk"].iloc[0] == 1030.33

    write_list(_list(), tmp_path / "l.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "l.parquet"), _list())

    with pytest.raises(PropensityError, match="use a .parquet, .csv or .xlsx"):
        write_list(_list(), tmp_path / "l.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.csv", "l.parquet", "l.xlsx"]  # nothing partial left


def test_csv_is_written_as_pandas_writes_it(tmp_path):
    """DuckDB writes the CSV (pandas took a minute for 1M scored rows); the bytes are pandas' own."""
    import numpy as np

    from features.store import write_frame

    frame = _list().assign(
        as_of=pd.to_datetime(["2011-12-09", "2011-12-09"]),  # midnights: written as dates
        ts=pd.to_datetime(["2011-12-09 10:01:02", None]),
        share=[1 / 3, np.nan],
        big=[1e20, -0.0],
        small=np.array([1, 2], dtype="int8"),
        flag=[True, False],
        note=['say "hi", ok', "a,b"],
    )
    frame.to_csv(tmp_path / "pandas.csv", index=False)
    written = write_frame(frame, tmp_path / "list.csv")
    assert written.read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".partial"] == []


def test_csv_of_what_duckdb_would_write_otherwise_is_written_by_pandas(tmp_path):
    """Zoned timestamps (DuckDB would print them in its own time zone), repeated column names and columns of mixed
    Python objects are written by pandas itself: the same bytes either way."""
    from features.store import write_frame

    frames = {
        "zoned": pd.DataFrame({"ts": pd.to_datetime(["2011-12-09 10:00"]).tz_localize("Europe/London")}),
        "repeated": pd.DataFrame([[1, 2]], columns=["a", "a"]),
        "mixed": pd.DataFrame({"x": [1, "two", 3.5]}),
    }
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}_pandas.csv", index=False)
        written = write_frame(frame, tmp_path / f"{name}.csv")
        assert written.read_bytes() == (tmp_path / f"{name}_pandas.csv").read_bytes(), name
