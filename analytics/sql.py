"""Load SQL from ``sql/<name>.sql`` by name and run it with bound ``$named`` parameters.

This is the one module that talks to DuckDB. Queries are files, never strings built from data:
every value reaches DuckDB as a bound parameter or a registered Arrow/Polars relation, so
attacker-influenced strings in records can never change a query's meaning.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REPO_SQL = Path(__file__).resolve().parent.parent / "sql"


@cache
def load(name: str) -> str:
    """The text of ``sql/<name>.sql`` (from the source tree, or from the installed wheel)."""
    if not _NAME.match(name):
        raise ValueError(f"invalid query name {name!r}")
    if (_REPO_SQL / f"{name}.sql").is_file():
        return (_REPO_SQL / f"{name}.sql").read_text(encoding="utf-8")
    return resources.files("keytrail_sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC (so dates and hours are the events' UTC ones)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


def query(
    name: str,
    relations: dict[str, pa.Table | pl.DataFrame | pl.LazyFrame],
    params: dict[str, Any] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Run ``sql/<name>.sql`` over the given relations (registered as views) and return Polars."""
    own = con is None
    connection = con or connect()
    try:
        for view, relation in relations.items():
            data = relation.collect() if isinstance(relation, pl.LazyFrame) else relation
            connection.register(view, data)
        relation = connection.sql(load(name), params=params or None)
        frame = pl.from_arrow(relation.to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame
    finally:
        if own:
            connection.close()
        else:
            for view in relations:
                connection.unregister(view)
