"""Reading files as users have them: what cannot be read is one sentence, and no record is lost unsaid."""

import gzip

import duckdb
import pandas as pd
import pytest

from features.contract import load_mapping
from features.errors import PropensityError
from features.sources import Source
from features.validate import ingest

HEADER = "customer_id,invoice_id,ts,quantity,unit_price\n"
LINES = ["1,i1,2021-01-04 10:00:00,2,1.5", "2,i2,2021-01-05 11:00:00,1,3.0", "3,i3,2021-01-06 12:00:00,4,2.25"]


def _load(path, mapping="canonical", **source):
    con = duckdb.connect()
    m = load_mapping(mapping) if isinstance(mapping, str) else mapping
    return con, ingest(con, Source(path, **source), m)


def test_ragged_and_cut_off_records_are_quarantined_with_their_line_numbers(tmp_path):
    text = HEADER + "\n".join([LINES[0], "4,i4,2021-01-07 10:00:00,1", LINES[1], "5,i5,2021-01-08,1,2,extra", LINES[2]])
    (tmp_path / "ragged.csv").write_text(text + "\n6,i6,2021-01-0")  # the last record is cut off
    con, report = _load(tmp_path / "ragged.csv")
    assert (report.input_rows, report.accepted_rows, report.by_reason) == (6, 3, {"malformed_row": 3})
    rows = con.execute("SELECT source_line, raw_line FROM quarantine ORDER BY source_line").fetchall()
    assert rows == [(3, "4,i4,2021-01-07 10:00:00,1"), (5, "5,i5,2021-01-08,1,2,extra"), (7, "6,i6,2021-01-0")]


def test_a_file_of_mostly_malformed_records_is_refused_naming_the_first(tmp_path):
    (tmp_path / "bad.csv").write_text(HEADER + "1,i1\n2,i2\n" + LINES[0] + "\n")
    with pytest.raises(PropensityError, match=r"Only 1 of 3 records .* first on line 2 \('1,i1'\).*--delimiter"):
        ingest(duckdb.connect(), Source(tmp_path / "bad.csv"), load_mapping("canonical"), min_accepted_share=0.5)


@pytest.mark.parametrize("delimiter", [None, "whitespace", " "])
def test_whitespace_separated_text_loads_with_runs_of_spaces_and_tabs(tmp_path, delimiter):
    text = (
        "customer_id   ts          amount\n 00001  2021-01-04   11.77\n00002\t2021-01-05\t 8.5  \n\n00003 2021-01-06\n"
    )
    (tmp_path / "cdnow.txt").write_text(text)
    con, report = _load(tmp_path / "cdnow.txt", delimiter=delimiter)
    assert (report.accepted_rows, report.by_reason) == (2, {"malformed_row": 1})  # the blank line is no record
    got = con.execute("SELECT customer_id, amount FROM transactions ORDER BY ts").fetchall()
    assert got == [("00001", 11.77), ("00002", 8.5)]
    assert con.execute("SELECT source_line FROM quarantine").fetchall() == [(5,)]


def test_the_delimiter_comes_from_the_header_even_when_rows_are_ragged(tmp_path):
    (tmp_path / "semi.csv").write_text(HEADER.replace(",", ";") + "1;i1;2021-01-04;2;1.5\n2;i2;2021-01-05;1\n")
    _, report = _load(tmp_path / "semi.csv")
    assert (report.accepted_rows, report.by_reason) == (1, {"malformed_row": 1})


@pytest.mark.parametrize("typed", ["\t", "\\t", "tab"])
def test_a_tab_delimiter_as_a_shell_passes_it(tmp_path, typed):
    (tmp_path / "t.txt").write_text("customer_id\tts\tamount\n1\t2021-01-04\t3\n")
    assert _load(tmp_path / "t.txt", delimiter=typed)[1].accepted_rows == 1
    with pytest.raises(PropensityError, match="one character"):
        _load(tmp_path / "t.txt", delimiter=";;")


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_the_same_column_name_twice_is_an_error_naming_it(tmp_path, suffix):
    sep = "," if suffix == ".csv" else "\t"
    (tmp_path / f"d{suffix}").write_text(sep.join(["customer_id", "ts", "amount", "amount"]) + "\n1,2021-01-04,3,4\n")
    with pytest.raises(PropensityError, match=r"names the column 'amount' twice"):
        _load(tmp_path / f"d{suffix}")


def test_encodings_an_unreadable_one_is_named_and_the_option_reads_it(tmp_path):
    (tmp_path / "latin.csv").write_bytes(
        ("customer_id,invoice_id,country,ts,quantity,unit_price\n1,i1,Espa\u00f1a,2021-01-04,2,1.5\n").encode("latin-1")
    )
    with pytest.raises(PropensityError, match=r"not utf-8 text \(byte 0xF1 on line 2\).*--encoding latin-1"):
        _load(tmp_path / "latin.csv")
    for encoding in ("latin-1", "cp1252"):  # DuckDB's own reader, then Python's codecs for the rest
        con, report = _load(tmp_path / "latin.csv", encoding=encoding)
        assert con.execute("SELECT country FROM transactions").fetchall() == [("Espa\u00f1a",)]
    (tmp_path / "euro.csv").write_bytes("customer_id,ts,amount,note\n1,2021-01-04,3,\u20ac\n".encode("cp1252"))
    con, report = _load(tmp_path / "euro.csv", encoding="cp1252")
    assert report.accepted_rows == 1


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_files_longer_than_the_sniffed_head_read_whole_whatever_their_encoding(tmp_path, encoding):
    rows = "customer_id,ts,amount,country\n" + "".join(f"{i},2021-01-04,3,Espa\u00f1a\n" for i in range(6000))
    (tmp_path / "long.csv").write_bytes(rows.encode(encoding))  # longer than the 64 KB head read first
    con, report = _load(tmp_path / "long.csv", encoding=encoding)
    assert report.accepted_rows == 6000 and con.execute("SELECT DISTINCT country FROM transactions").fetchall() == [
        ("Espa\u00f1a",)
    ]


def test_gzip_csv_is_read_and_files_that_are_not_text_are_named(tmp_path):
    with gzip.open(tmp_path / "log.csv.gz", "wt") as f:
        f.write(HEADER + "\n".join(LINES) + "\n")
    assert _load(tmp_path / "log.csv.gz")[1].accepted_rows == 3
    (tmp_path / "zipped.csv").write_bytes(gzip.compress((HEADER + LINES[0] + "\n").encode()))
    assert _load(tmp_path / "zipped.csv")[1].accepted_rows == 1  # gzip named .csv: read all the same
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(PropensityError, match=r"the file is empty"):
        _load(tmp_path / "empty.csv")
    pd.DataFrame({"a": [1]}).to_excel(tmp_path / "book.xlsx", index=False)
    (tmp_path / "book.csv").write_bytes((tmp_path / "book.xlsx").read_bytes())
    with pytest.raises(PropensityError, match=r"ZIP archive \(an Excel workbook named \.csv\?\)"):
        _load(tmp_path / "book.csv")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(PropensityError, match=r"not a readable Excel workbook"):
        _load(tmp_path / "broken.xlsx")


def test_decimal_commas_are_read_when_declared(tmp_path):
    text = "customer_id;ts;quantity;unit_price\n1;2021-01-04;2;2,55\n2;2021-01-05;1;1.234,50\n3;2021-01-06;1;7\n"
    (tmp_path / "eu.csv").write_text(text)
    con, report = _load(tmp_path / "eu.csv")
    assert report.by_reason == {"invalid_price": 2}  # without the option a comma is not a decimal point
    mapping = load_mapping("canonical").model_copy(update={"decimal": ","})
    con, report = _load(tmp_path / "eu.csv", mapping)
    got = con.execute("SELECT customer_id, unit_price FROM transactions ORDER BY customer_id").fetchall()
    assert got == [("1", 2.55), ("2", 1234.5), ("3", 7.0)]


def test_excel_sheets_are_all_read_when_they_share_a_header_and_never_silently_skipped(tmp_path):
    rows = [dict(zip(HEADER.strip().split(","), line.split(","), strict=True)) for line in LINES]
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(rows[:2]).to_excel(book, sheet_name="2021-H1", index=False)
        pd.DataFrame(rows[2:]).to_excel(book, sheet_name="2021-H2", index=False)
        pd.DataFrame().to_excel(book, sheet_name="empty", index=False)
    assert _load(path)[1].accepted_rows == 3
    assert _load(path, sheet="2021-H2")[1].accepted_rows == 1
    with pd.ExcelWriter(path, mode="a") as book:
        pd.DataFrame({"note": ["prices exclude VAT"]}).to_excel(book, sheet_name="notes", index=False)
    with pytest.raises(PropensityError, match=r"sheets with different headers .*'notes'.*--sheet NAME"):
        _load(path)
    assert _load(path, sheet="2021-H1")[1].accepted_rows == 2
    with pytest.raises(PropensityError, match=r"no sheet 'H3'; its sheets are"):
        _load(path, sheet="H3")
    pd.DataFrame([["customer_id", "ts", "amount", "amount"], ["1", "2021-01-04", "3", "4"]]).to_excel(
        tmp_path / "twice.xlsx", index=False, header=False
    )
    with pytest.raises(PropensityError, match=r"names the column 'amount' twice"):
        _load(tmp_path / "twice.xlsx")


def test_identical_lines_without_invoice_ids_are_kept_and_counted_unless_asked(tmp_path):
    (tmp_path / "events.csv").write_text("customer_id,ts,amount\n1,2021-01-04,3\n1,2021-01-04,3\n2,2021-01-05,3\n")
    _, report = _load(tmp_path / "events.csv")
    assert (report.accepted_rows, report.identical_lines_kept, report.by_reason) == (3, 1, {})
    strict = load_mapping("canonical").model_copy(update={"duplicates_without_invoice": "quarantine"})
    _, report = _load(tmp_path / "events.csv", strict)
    assert (report.accepted_rows, report.by_reason) == (2, {"duplicate_line": 1})


def test_a_file_with_thousands_of_columns_loads_and_duplicates_stay_exact(tmp_path):
    extra = [f"extra_{k}" for k in range(2000)]
    same = ",".join(["x"] * len(extra))
    other = ",".join(
        ["y" if k == 7 else "x" for k in range(len(extra))]
    )  # differs only where the contract does not read
    text = HEADER.strip() + "," + ",".join(extra) + "\n" + f"{LINES[0]},{same}\n{LINES[0]},{other}\n{LINES[0]},{same}\n"
    (tmp_path / "wide.csv").write_text(text)
    con, report = _load(tmp_path / "wide.csv")
    assert (report.accepted_rows, report.by_reason) == (2, {"duplicate_line": 1})  # only the exact copy
    got = con.execute('SELECT source_row, "extra_7", "extra_1999" FROM quarantine').fetchall()
    assert got == [(3, "x", "x")]  # the quarantined row keeps all of its columns
