"""Quoting text into DuckDB SQL: string literals and identifiers."""


def sql_string(text) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
