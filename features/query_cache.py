"""Compiled feature queries kept between processes, so that a build over the store's folds skips Ibis.

Building the feature expression and compiling it to SQL is pure Python: ~0.5 s for the main and the
scoring-only query, whatever the size of the log; on a 50k-customer store it was two thirds of a build. The
SQL depends only on the code, the library versions, the store tables' names and column types and the build's
settings, never on the data or the cutoff date (a one-cutoff build reads its cutoff from a temporary table,
``CUTOFF_TABLE``). So the compiled SQL and its result schema are kept in a file named by a digest of exactly
those inputs; a change to any of them (an edited feature, another Ibis or DuckDB) is another digest, never a
stale query.

Where: ``$PROPENSITY_CACHE_DIR``, else ``$XDG_CACHE_HOME/propensity``, else ``~/.cache/propensity``, under
``sql/``. ``PROPENSITY_SQL_CACHE=off`` turns it off. A directory that cannot be written is not an error: the
build compiles, as it would without the cache. Files are written atomically (a whole file or none).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir

CUTOFF_TABLE = "propensity_build_cutoffs"  # the one-cutoff build's cutoff row, a temporary table
_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path | None:
    """Where compiled queries are kept (None: the cache is off)."""
    if os.environ.get("PROPENSITY_SQL_CACHE", "").lower() in ("0", "off", "false", "no"):
        return None
    if root := os.environ.get("PROPENSITY_CACHE_DIR"):
        return Path(root) / "sql"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "propensity" / "sql"


@functools.cache
def _code_digest() -> str:
    """The feature package's files (code and configuration) and the versions of the libraries that compile and
    run the SQL."""
    digest = hashlib.sha256()
    for path in sorted(p for p in _PACKAGE.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml")):
        digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    for library in ("ibis-framework", "sqlglot", "duckdb"):
        digest.update(f"{library}=={version(library)}\0".encode())
    return digest.hexdigest()


def table_identity(table: ir.Table | None) -> list | None:
    """A stored table as the key knows it (its name and column types); None for a table that is an expression
    over others (its SQL is not known without compiling it)."""
    if table is None:
        return ["none"]
    op = table.op()
    if not isinstance(op, ops.DatabaseTable):
        return None
    return [op.name, [[name, str(dtype)] for name, dtype in table.schema().items()]]


def _key(parts: dict) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256((_code_digest() + text).encode()).hexdigest()[:40]


_MEMORY: dict[str, tuple[str, ibis.Schema]] = {}


def compiled(parts: dict, compile_: Callable[[], tuple[str, ibis.Schema]]) -> tuple[str, ibis.Schema]:
    """The SQL and result schema for the build described by ``parts`` (JSON-able), from this process's memory,
    the cache directory, or ``compile_()`` (then kept in both)."""
    key = _key(parts)
    if key in _MEMORY:
        return _MEMORY[key]
    folder = cache_dir()
    path = folder / f"{key}.json" if folder else None
    if path is not None and path.is_file():
        try:
            kept = json.loads(path.read_text())
            _MEMORY[key] = kept["sql"], ibis.schema({name: dtype for name, dtype in kept["schema"]})
            return _MEMORY[key]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or from a broken write: compile again and replace it
    sql, schema = compile_()
    _MEMORY[key] = sql, schema
    if path is not None:
        _write(path, {"sql": sql, "schema": [[name, str(dtype)] for name, dtype in schema.items()]})
    return sql, schema


def _write(path: Path, content: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(content, out)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
    except OSError:
        return  # a read-only home or a full disk: the build goes on without keeping the query
