"""Rows → typed frames: every report table is conformed to its declared Arrow schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa


def conform(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pl.DataFrame:
    """A Polars frame with exactly ``schema``'s columns and types (missing keys become null)."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def conform_frame(frame: pl.DataFrame, schema: pa.Schema) -> pl.DataFrame:
    """Select and cast ``frame`` to ``schema`` (columns it lacks are added as nulls)."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        empty = conform([], schema).select(missing)
        frame = frame.with_columns(
            pl.lit(None, dtype=empty.schema[name]).alias(name) for name in missing
        )
    table = frame.select(schema.names).to_arrow().cast(schema)
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame as an Arrow table in ``schema`` (nullability checked by the cast)."""
    return frame.select(schema.names).to_arrow().cast(schema)
