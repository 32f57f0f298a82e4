"""Reading a lake table the way an analyst's engine does: Hive partitioning over a glob, so
``event_date`` comes from the folder names (it is not stored inside the files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from analytics.lake import schema as s


def read_table(folder: Path, columns: Sequence[str] | None = None, name: str = "*") -> pl.DataFrame:
    """Every ``folder/event_date=*/<name>.parquet`` with ``event_date`` from the path, in the
    order of ``columns`` when given (Polars puts the partition column last)."""
    frame = pl.read_parquet(
        folder / "*" / f"{name}.parquet",
        hive_partitioning=True,
        hive_schema={s.EVENT_DATE: pl.Date},
    )
    return frame.select(columns) if columns is not None else frame
