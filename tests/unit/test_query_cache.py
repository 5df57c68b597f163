"""The compiled-query cache of one-cutoff builds over the store (features.query_cache): what it keeps, that a
kept query gives the features of the lines for another date, and that a broken or unwritable cache costs
nothing but the compile."""

import json
from datetime import date

import pandas as pd
import pytest

from features import query_cache
from features.build import build_features
from features.contract import load_mapping
from features.sources import Source
from features.transactions import ingest_into_store, open_store_log


@pytest.fixture
def store(small_synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("PROPENSITY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(query_cache, "_MEMORY", {})  # each test starts as a fresh process would
    _, _, parquet = small_synthetic
    path = tmp_path / "propensity.duckdb"
    ingest_into_store(path, Source(parquet), load_mapping("canonical"), min_accepted_share=0.0)
    return path


def _kept(tmp_path) -> list:
    folder = tmp_path / "cache" / "sql"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _compiles(monkeypatch) -> list:
    """Count the compiles of the feature expressions (Ibis's DuckDB compiler)."""
    import ibis.backends.duckdb as duckdb_backend

    calls, compile_ = [], duckdb_backend.Backend.compile

    def counted(self, expr, *args, **kwargs):
        calls.append(1)
        return compile_(self, expr, *args, **kwargs)

    monkeypatch.setattr(duckdb_backend.Backend, "compile", counted)
    return calls


def test_a_kept_query_serves_another_date_without_compiling(store, tmp_path, monkeypatch):
    with open_store_log(store) as log:
        first = build_features(log.source, date(2023, 6, 1))
        kept = _kept(tmp_path)
        assert len(kept) == 2  # the features and the scoring-only features
        assert all({"sql", "schema"} <= set(json.loads(p.read_text())) for p in kept)
        monkeypatch.setattr(query_cache, "_MEMORY", {})  # as a new process would: from the files
        calls = _compiles(monkeypatch)
        later = build_features(log.source, date(2023, 9, 1))
        assert calls == [] and _kept(tmp_path) == kept
        want = build_features(log.table, date(2023, 9, 1))
    pd.testing.assert_frame_equal(later, want, check_exact=False, rtol=1e-12, atol=0)
    assert len(first) > 0 and not first["as_of"].eq(later["as_of"].iloc[0]).any()


def test_other_settings_are_other_queries(store, tmp_path):
    with open_store_log(store) as log:
        short = build_features(log.source, date(2023, 9, 1), lookback_days=60)
        assert len(_kept(tmp_path)) == 2
        build_features(log.source, date(2023, 9, 1))
        assert len(_kept(tmp_path)) == 4  # both queries read the look-back (the scoring-only one keeps its population)
        want = build_features(log.table, date(2023, 9, 1), lookback_days=60)
    pd.testing.assert_frame_equal(short, want, check_exact=False, rtol=1e-12, atol=0)


def test_a_broken_cache_file_is_compiled_again_and_replaced(store, tmp_path, monkeypatch):
    with open_store_log(store) as log:
        want = build_features(log.source, date(2023, 9, 1))
        for path in _kept(tmp_path):
            path.write_text('{"sql": "SELECT')  # a write cut short
        monkeypatch.setattr(query_cache, "_MEMORY", {})
        calls = _compiles(monkeypatch)
        got = build_features(log.source, date(2023, 9, 1))
    assert len(calls) == 2
    assert all(json.loads(p.read_text())["sql"].startswith(("WITH", "SELECT")) for p in _kept(tmp_path))
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("setting", ["unwritable", "off"])
def test_without_a_cache_the_build_compiles(store, tmp_path, monkeypatch, setting):
    if setting == "off":
        monkeypatch.setenv("PROPENSITY_SQL_CACHE", "off")
    else:
        (tmp_path / "cache").write_text("a file where the folder should be")
    with open_store_log(store) as log:
        got = build_features(log.source, date(2023, 9, 1))
        want = build_features(log.table, date(2023, 9, 1))
    assert not (tmp_path / "cache" / "sql").exists()
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=0)
