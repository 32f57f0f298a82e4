"""``keytrail lake ddl``: each engine's statements parse in that engine's dialect (sqlglot), and
the tables they declare have the lake schemas' columns, types and partition column.

The statements are parsed, not compared as text: names and types are read back from the parse
tree and checked against the Arrow schemas in analytics.lake.schema. The golden files pin the exact
text for review (``KEYTRAIL_UPDATE_GOLDEN=1`` rewrites them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp
from typer.testing import CliRunner

from analytics.detect.features import feature_schema
from analytics.lake import schema as s
from analytics.lake.ddl import DdlError, lake_location, statements
from flows.cli import app

ENGINES = ("athena", "trino", "spark")
LAKE = "s3://sec-lake/keytrail/prod"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KEYTRAIL_UPDATE_GOLDEN") == "1"
D = exp.DataType.Type


def _schemas() -> dict[str, tuple[str, pa.Schema]]:
    """Table name → (folder under the lake, Arrow schema): the lake contract, from the code."""
    return {
        "events": ("events", s.EVENT_SCHEMA),
        "hourly_features": ("features/hourly", feature_schema()),
        "alerts": ("alerts", s.ALERT_SCHEMA),
        "incidents": ("incidents", s.INCIDENT_SCHEMA),
    }


def _parsed(engine: str, **options: str) -> list[exp.Expression]:
    return [sqlglot.parse_one(sql, read=engine) for sql in statements(engine, LAKE, **options)]


def _tables(engine: str) -> dict[str, exp.Create]:
    return {
        create.this.this.name: create
        for create in _parsed(engine)
        if isinstance(create, exp.Create) and create.kind == "TABLE"
    }


def _property(create: exp.Create, kind: type[exp.Expression]) -> exp.Expression:
    found = [p for p in create.args["properties"].expressions if isinstance(p, kind)]
    assert len(found) == 1, create.sql()
    return found[0]


def _named(create: exp.Create) -> dict[str, str]:
    """Generic ``'name' = 'value'`` properties (Athena's TBLPROPERTIES, Trino's WITH)."""
    props = create.args["properties"].expressions
    return {p.name: p.args["value"].this for p in props if type(p) is exp.Property}


# The lake's timestamps are UTC instants. sqlglot reads Spark's TIMESTAMP as the instant type it
# is; Athena's and Trino's Hive tables have only a zone-less TIMESTAMP, read as UTC.
INSTANT = {"athena": D.TIMESTAMP, "trino": D.TIMESTAMP, "spark": D.TIMESTAMPTZ}


def _check_type(engine: str, arrow: pa.DataType, parsed: exp.DataType, where: str) -> None:
    """The parsed engine type means the Arrow type: same kind, same nesting, same field names."""
    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        assert parsed.this == D.ARRAY, where
        _check_type(engine, arrow.value_type, parsed.expressions[0], f"{where}[]")
        return
    if pa.types.is_struct(arrow):
        assert parsed.this == D.STRUCT, where
        fields = parsed.expressions
        assert [f.name for f in fields] == [f.name for f in arrow], where
        for field, inner in zip(arrow, fields, strict=True):
            _check_type(engine, field.type, inner.args["kind"], f"{where}.{field.name}")
        return
    expected = {
        pa.string(): {D.TEXT, D.VARCHAR},
        pa.large_string(): {D.TEXT, D.VARCHAR},
        pa.bool_(): {D.BOOLEAN},
        pa.int32(): {D.INT},
        pa.int64(): {D.BIGINT},
        pa.float64(): {D.DOUBLE},
        pa.date32(): {D.DATE},
    }
    if pa.types.is_timestamp(arrow):
        assert arrow.tz == "UTC" and parsed.this == INSTANT[engine], where
        return
    assert arrow in expected, f"{where}: the test knows no engine type for {arrow}"
    assert parsed.this in expected[arrow], f"{where}: {parsed.sql()} for {arrow}"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_statement_parses_and_each_table_has_the_lake_schema(engine: str) -> None:
    tables = _tables(engine)
    assert set(tables) == set(_schemas())
    for name, (folder, schema) in _schemas().items():
        create = tables[name]
        assert create.this.this.args["db"].name == "keytrail"
        columns = [c for c in create.this.expressions if isinstance(c, exp.ColumnDef)]
        stored = [f for f in schema if f.name != s.EVENT_DATE]
        partitioned = _property(create, exp.PartitionedByProperty).this
        if engine == "athena":  # partition column declared apart, with its type
            declared = [c for c in partitioned.expressions if isinstance(c, exp.ColumnDef)]
            assert [c.name for c in declared] == [s.EVENT_DATE]
            assert declared[0].args["kind"].this == D.DATE
            where = _property(create, exp.LocationProperty).this.name
            assert where == f"{LAKE}/{folder}/"
        else:  # partition column last among the columns, named in the partitioning clause
            assert [c.name for c in columns][-1] == s.EVENT_DATE
            assert columns[-1].args["kind"].this == D.DATE
            columns = columns[:-1]
            names = [e.name for e in partitioned.expressions]
            assert names == [s.EVENT_DATE]
            where = (
                _named(create)["external_location"]
                if engine == "trino"
                else _property(create, exp.LocationProperty).this.name
            )
            assert where == f"{LAKE}/{folder}"
        assert [c.name for c in columns] == [f.name for f in stored], name
        for column, field in zip(columns, stored, strict=True):
            _check_type(engine, field.type, column.args["kind"], f"{name}.{field.name}")


def test_athena_finds_days_by_partition_projection() -> None:
    for name, (folder, _) in _schemas().items():
        props = _named(_tables("athena")[name])
        assert props["projection.enabled"] == "true"
        assert props["projection.event_date.type"] == "date"
        assert props["projection.event_date.format"] == "yyyy-MM-dd"
        assert props["projection.event_date.range"] == "2020-01-01,NOW"
        assert props["storage.location.template"] == (
            f"{LAKE}/{folder}/event_date=${{event_date}}/"
        )


def test_trino_and_spark_are_told_how_to_find_the_days() -> None:
    trino = [e.sql() for e in _parsed("trino") if isinstance(e, exp.Command)]
    assert all("system.sync_partition_metadata('keytrail'" in c for c in trino)
    assert len(trino) == len(_schemas())
    spark = [e.sql() for e in _parsed("spark") if isinstance(e, exp.Command)]
    assert [c.split()[-1] for c in spark] == [f"`keytrail`.`{t}`" for t in _schemas()]


@pytest.mark.parametrize(
    "location",
    [
        "https://sec-lake/keytrail",
        "s3://sec-lake/it's",
        's3://sec-lake/"quoted"',
        "s3://sec-lake/a`b",
        "s3://sec-lake/new\nline",
        "s3://sec-lake/tab\there",
        "s3://sec-lake/x${event_date}",
        "s3://sec-lake/back\\slash",
        "s3://sec-lake/semi;DROP TABLE x",
        "s3://Not_A_Bucket/x",
        "s3:///no-bucket",
    ],
)
def test_a_location_that_is_not_a_plain_s3_uri_is_refused(location: str) -> None:
    with pytest.raises(DdlError):
        lake_location(location)
    result = CliRunner().invoke(app, ["lake", "ddl", "--engine", "athena", "--lake", location])
    assert result.exit_code == 2
    assert "CREATE" not in result.output


def test_a_database_name_that_needs_quoting_is_refused() -> None:
    for name in ("x`; DROP DATABASE y; --", 'a"b', "Has-Dash", ""):
        with pytest.raises(DdlError):
            statements("trino", LAKE, database=name)
    parsed = _parsed("spark", database="sec_lake_2")
    assert {c.this.this.args["db"].name for c in parsed[1:] if isinstance(c, exp.Create)} == {
        "sec_lake_2"
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_the_cli_prints_the_statements_as_in_the_golden_file(engine: str) -> None:
    result = CliRunner().invoke(app, ["lake", "ddl", "--engine", engine, "--lake", LAKE + "/"])
    assert result.exit_code == 0, result.output
    assert result.output.count(";\n") == len(statements(engine, LAKE))
    path = GOLDEN / f"{engine}.sql"
    if UPDATE:
        path.write_text(result.output)
    assert path.exists(), f"{path} is missing; run with KEYTRAIL_UPDATE_GOLDEN=1 to create it"
    assert result.output == path.read_text()
