"""Every engine reads the lake's partitions alike: ``event_date`` comes from the folder name.

pyarrow (``partitioning="hive"``), DuckDB (``hive_partitioning = true``) and Polars
(``hive_partitioning=True``) read events, hourly features, alerts and incidents with one
``event_date`` per row and the same row count per day as keytrail itself; and a lake written
before ``event_date`` left the files (the column inside each file as well) still reads the same
through keytrail.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from analytics import api
from analytics.adapters.lake import LocalLake, with_partition_column
from analytics.detect import features
from analytics.detect import scoring as detect
from analytics.lake import schema as s
from analytics.lake.check import check_lake
from analytics.publish.export import OcsfFileSink, default_ocsf_path, export
from tests.lake.conftest import LAST_DAY

DAY = dt.date.fromisoformat(LAST_DAY)
TABLES = {
    "events": s.EVENT_SCHEMA,
    "features/hourly": None,
    "alerts": s.ALERT_SCHEMA,
    "incidents": s.INCIDENT_SCHEMA,
}


@pytest.fixture
def full_lake(lake_copy: LocalLake) -> LocalLake:
    """The sample lake with every table: features of every day, the last two days scored, and
    the last day's alerts exported to the default OCSF file."""
    features.ensure_days(lake_copy, lake_copy.event_dates())
    for day in (DAY - dt.timedelta(days=1), DAY):
        detect.run(lake_copy, day)
    export(lake_copy, DAY, OcsfFileSink(default_ocsf_path(lake_copy, DAY)))
    assert default_ocsf_path(lake_copy, DAY).is_file()
    return lake_copy


def _per_day(frame: pl.DataFrame) -> dict[str, int]:
    counts = frame.group_by(s.EVENT_DATE).len()
    return {str(day): n for day, n in counts.iter_rows() if n}


def _pyarrow(root: Path) -> tuple[pa.DataType, dict[str, int]]:
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    table = dataset.to_table(columns=[s.EVENT_DATE])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return dataset.schema.field(s.EVENT_DATE).type, _per_day(frame)


def _duckdb(root: Path) -> tuple[str, dict[str, int]]:
    rows = duckdb.execute(
        "SELECT typeof(event_date), CAST(event_date AS VARCHAR), count(*) "
        "FROM read_parquet($glob, hive_partitioning = true) GROUP BY ALL",
        {"glob": str(root / "*" / "*.parquet")},
    ).fetchall()
    assert len({kind for kind, _, _ in rows}) == 1
    return rows[0][0], {day: n for _, day, n in rows}


def _polars(root: Path) -> tuple[pl.DataType, dict[str, int]]:
    frame = pl.scan_parquet(root / "*" / "*.parquet", hive_partitioning=True).collect()
    return frame.schema[s.EVENT_DATE], _per_day(frame)


def _keytrail(lake: LocalLake, table: str) -> dict[str, int]:
    opened = api.open_lake(lake.root)
    days = lake.event_dates()
    if table == "events":
        return _per_day(api.scan_events(opened).select(s.EVENT_DATE).collect())
    if table == "features/hourly":
        return _per_day(features.scan(lake, days[0], days[-1]).collect())
    if table == "alerts":
        return _per_day(api.alerts(opened, include_suppressed=True))
    return _per_day(pl.concat([detect.read_incidents(lake, d) for d in opened.alert_dates()]))


@pytest.mark.parametrize("table", TABLES)
def test_pyarrow_duckdb_and_polars_agree_with_keytrail_on_every_table(
    full_lake: LocalLake, table: str
) -> None:
    root = full_lake.root / table
    files = sorted(p for p in root.rglob("*") if p.is_file())
    # Engines read every file of a table's folder as Parquet: nothing else may be there.
    assert files and all(f.suffix == ".parquet" for f in files)
    assert not any(s.EVENT_DATE in pq.read_schema(f).names for f in files)
    arrow_type, by_pyarrow = _pyarrow(root)
    duck_type, by_duckdb = _duckdb(root)
    polars_type, by_polars = _polars(root)
    expected = _keytrail(full_lake, table)
    assert expected, f"the sample lake has no {table} rows to compare"
    assert by_pyarrow == by_duckdb == by_polars == expected
    # The path alone gives the type: pyarrow's inference says string, the others a date.
    assert (arrow_type, duck_type, polars_type) == (pa.string(), "DATE", pl.Date)
    typed = ds.dataset(root, format="parquet", partitioning=ds.partitioning(
        pa.schema([(s.EVENT_DATE, pa.date32())]), flavor="hive"))  # fmt: skip
    assert typed.schema.field(s.EVENT_DATE).type == pa.date32()


def _to_old_shape(path: Path, schema: pa.Schema) -> None:
    """Rewrite a file as the previous code wrote it: ``event_date`` inside the file too."""
    day = dt.date.fromisoformat(path.parent.name.split("=", 1)[1])
    pq.write_table(with_partition_column(pq.read_table(path), day, schema), path)


def test_a_lake_written_with_event_date_in_the_files_still_reads(full_lake: LocalLake) -> None:
    opened = api.open_lake(full_lake.root)
    before_events = api.events(opened, start=DAY - dt.timedelta(days=3), end=DAY)
    before_alerts = api.alerts(opened, include_suppressed=True)
    before_incidents = detect.read_incidents(full_lake, DAY)
    before_features = features.scan(full_lake, DAY - dt.timedelta(days=3), DAY).collect()
    # Old files beside new ones: two days wholly old, the last day's events one old file of
    # several, and the scored days' alerts and incidents.
    for day in (DAY - dt.timedelta(days=3), DAY - dt.timedelta(days=2)):
        for path in full_lake.partition_files(day):
            _to_old_shape(path, s.EVENT_SCHEMA)
    _to_old_shape(full_lake.partition_files(DAY)[0], s.EVENT_SCHEMA)
    for path in (full_lake.root / "alerts").rglob("*.parquet"):
        _to_old_shape(path, s.ALERT_SCHEMA)
    for path in (full_lake.root / "incidents").rglob("*.parquet"):
        _to_old_shape(path, s.INCIDENT_SCHEMA)
    feature_file = features.features_path(full_lake, DAY - dt.timedelta(days=1))
    metadata = pq.read_schema(feature_file).metadata
    old = with_partition_column(pq.read_table(feature_file), DAY - dt.timedelta(days=1),
                                features.feature_schema())  # fmt: skip
    pq.write_table(old.replace_schema_metadata(metadata), feature_file)

    reopened = api.open_lake(full_lake.root)
    assert reopened.local.skipped_files() == {}
    assert api.events(reopened, start=DAY - dt.timedelta(days=3), end=DAY).equals(before_events)
    assert api.alerts(reopened, include_suppressed=True).equals(before_alerts)
    assert detect.read_incidents(full_lake, DAY).equals(before_incidents)
    after_features = features.scan(full_lake, DAY - dt.timedelta(days=3), DAY).collect()
    assert after_features.equals(before_features)
    assert check_lake(full_lake).clean
    # Features are derived: an old-shape feature file is computed again in today's shape.
    assert features.ensure_days(full_lake, [DAY - dt.timedelta(days=1)]) == [
        DAY - dt.timedelta(days=1)
    ]
    assert s.EVENT_DATE not in pq.read_schema(feature_file).names
