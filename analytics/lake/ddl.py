"""``CREATE TABLE`` statements that put the lake's tables in Athena, Trino and Spark catalogues.

The column lists are derived from the Arrow schemas in :mod:`analytics.lake.schema` (and, for the
hourly features, from the schema their SQL produces), one type mapping per engine, so a column
added to a schema reaches every engine's DDL without anyone writing it twice. ``event_date`` is
the partition column in every table: it lives in the folder name, never in the files, which is
the layout all three engines expect of a Hive-partitioned table.

Nothing here is interpolated unchecked: the location must be a plain ``s3://`` URI, the database
a plain name, and every identifier is quoted the way its engine quotes.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from analytics.lake import schema as s


class Engine(enum.StrEnum):
    ATHENA = "athena"
    TRINO = "trino"
    SPARK = "spark"


@dataclass(frozen=True)
class LakeTable:
    """One lake table: its catalogue name, its folder under the lake, its Arrow schema."""

    name: str
    folder: str
    schema: pa.Schema


def lake_tables() -> tuple[LakeTable, ...]:
    """The lake's four partitioned tables, in the order a reader meets them."""
    from analytics.detect.features import feature_schema

    return (
        LakeTable("events", "events", s.EVENT_SCHEMA),
        LakeTable("hourly_features", "features/hourly", feature_schema()),
        LakeTable("alerts", "alerts", s.ALERT_SCHEMA),
        LakeTable("incidents", "incidents", s.INCIDENT_SCHEMA),
    )


class DdlError(ValueError):
    """A location, database name or date that cannot go into a statement."""


DEFAULT_DATABASE = "keytrail"
DEFAULT_SINCE = dt.date(2020, 1, 1)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Key characters that need no quoting anywhere: S3's "safe" set. Quotes, backslashes, spaces,
# control characters, ``$``/``{`` (Athena's template syntax) and ``?``/``#`` are refused.
_PREFIX = re.compile(r"[A-Za-z0-9!\-_.*()/=+,]*")
_DATABASE = re.compile(r"[a-z_][a-z0-9_]{0,127}")


def lake_location(uri: str) -> str:
    """``s3://bucket/prefix`` checked and normalised to end without a slash.

    Raises :class:`DdlError` for anything else: the URI is written into SQL string literals."""
    if not uri.startswith("s3://"):
        raise DdlError(f"the lake location must be an s3:// URI, not {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise DdlError(f"{bucket!r} is not an S3 bucket name")
    prefix = prefix.strip("/")
    if not _PREFIX.fullmatch(prefix) or "//" in prefix:
        raise DdlError(
            "the lake prefix may hold only letters, digits, / and !-_.*()=+, "
            f"(no quotes, spaces, control characters, $ or {{}}): {prefix!r}"
        )
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def database_name(name: str) -> str:
    """A database (schema) name every engine takes: lower-case letters, digits, underscores."""
    if not _DATABASE.fullmatch(name):
        raise DdlError(
            f"database name {name!r}: use lower-case letters, digits and _ (not first a digit)"
        )
    return name


# --- identifiers and literals -----------------------------------------------------------------


def _backticks(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _double_quotes(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


QUOTE: dict[Engine, Callable[[str], str]] = {
    Engine.ATHENA: _backticks,
    Engine.TRINO: _double_quotes,
    Engine.SPARK: _backticks,
}
"""How each engine quotes an identifier: Athena's DDL (Hive) and Spark use backticks, Trino
double quotes."""


# --- Arrow types to engine types --------------------------------------------------------------


def _value_type(arrow: pa.DataType) -> pa.DataType:
    """The logical type behind encodings that do not change it (dictionary, large variants)."""
    if pa.types.is_dictionary(arrow):
        return _value_type(arrow.value_type)
    if pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        return pa.string()
    if pa.types.is_large_list(arrow) or pa.types.is_list_view(arrow):
        return pa.list_(arrow.value_field)
    return arrow


def _scalar(arrow: pa.DataType, names: dict[str, str]) -> str:
    """A scalar Arrow type in an engine's vocabulary (``names`` maps the logical kinds).

    Unsigned integers widen to the next signed type, as the engines read them from Parquet."""
    checks: list[tuple[Callable[[pa.DataType], bool], str]] = [
        (pa.types.is_string, "string"),
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_int8, "int8"),
        (pa.types.is_int16, "int16"),
        (pa.types.is_uint8, "int16"),
        (pa.types.is_int32, "int32"),
        (pa.types.is_uint16, "int32"),
        (pa.types.is_int64, "int64"),
        (pa.types.is_uint32, "int64"),
        (pa.types.is_float32, "float32"),
        (pa.types.is_float64, "float64"),
        (pa.types.is_date, "date"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_binary, "binary"),
        (pa.types.is_large_binary, "binary"),
    ]
    for check, kind in checks:
        if check(arrow):
            return names[kind]
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision},{arrow.scale})"
    raise DdlError(f"no engine type for the Arrow type {arrow}")


_HIVE_NAMES = {
    "string": "STRING", "boolean": "BOOLEAN", "int8": "TINYINT", "int16": "SMALLINT",
    "int32": "INT", "int64": "BIGINT", "float32": "FLOAT", "float64": "DOUBLE", "date": "DATE",
    "timestamp": "TIMESTAMP", "binary": "BINARY",
}  # fmt: skip
_TRINO_NAMES = {
    **_HIVE_NAMES, "string": "VARCHAR", "int32": "INTEGER", "float32": "REAL",
    "binary": "VARBINARY",
}  # fmt: skip


def hive_type(arrow: pa.DataType) -> str:
    """Athena's and Spark's DDL type for an Arrow type: both take Hive's syntax (``ARRAY<…>``,
    ``STRUCT<name: type>``). ``TIMESTAMP`` is the instant type both read Parquet's UTC-adjusted
    timestamps into (Athena at millisecond precision)."""
    arrow = _value_type(arrow)
    if pa.types.is_list(arrow):
        return f"ARRAY<{hive_type(arrow.value_type)}>"
    if pa.types.is_struct(arrow):
        fields = ", ".join(f"{_backticks(f.name)}: {hive_type(f.type)}" for f in arrow)
        return f"STRUCT<{fields}>"
    return _scalar(arrow, _HIVE_NAMES)


def trino_type(arrow: pa.DataType) -> str:
    """Trino's type for an Arrow type, as its Hive connector takes it: ``ARRAY(…)``,
    ``ROW(name type)``, and plain ``TIMESTAMP`` (the connector stores no time zone and reads
    at the precision of ``hive.timestamp-precision``)."""
    arrow = _value_type(arrow)
    if pa.types.is_list(arrow):
        return f"ARRAY({trino_type(arrow.value_type)})"
    if pa.types.is_struct(arrow):
        fields = ", ".join(f"{_double_quotes(f.name)} {trino_type(f.type)}" for f in arrow)
        return f"ROW({fields})"
    return _scalar(arrow, _TRINO_NAMES)


TYPE_OF: dict[Engine, Callable[[pa.DataType], str]] = {
    Engine.ATHENA: hive_type,
    Engine.TRINO: trino_type,
    Engine.SPARK: hive_type,
}


# --- statements -------------------------------------------------------------------------------


def _columns(table: LakeTable, engine: Engine, with_partition: bool) -> list[str]:
    quote, type_of = QUOTE[engine], TYPE_OF[engine]
    fields = [f for f in table.schema if f.name not in s.PARTITION_COLUMNS]
    if with_partition:  # Trino and Spark list the partition column last, among the columns
        fields += [pa.field(name, pa.date32()) for name in s.PARTITION_COLUMNS]
    return [f"  {quote(f.name)} {type_of(f.type)}" for f in fields]


def _athena(table: LakeTable, database: str, location: str, since: dt.date) -> str:
    q = _backticks
    where = f"{location}/{table.folder}/"
    properties = [
        ("projection.enabled", "true"),
        (f"projection.{s.EVENT_DATE}.type", "date"),
        (f"projection.{s.EVENT_DATE}.format", "yyyy-MM-dd"),
        (f"projection.{s.EVENT_DATE}.range", f"{since.isoformat()},NOW"),
        (f"projection.{s.EVENT_DATE}.interval", "1"),
        (f"projection.{s.EVENT_DATE}.interval.unit", "DAYS"),
        ("storage.location.template", f"{where}{s.EVENT_DATE}=${{{s.EVENT_DATE}}}/"),
    ]
    return "\n".join([
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {q(database)}.{q(table.name)} (",
        ",\n".join(_columns(table, Engine.ATHENA, with_partition=False)),
        ")",
        f"PARTITIONED BY ({q(s.EVENT_DATE)} DATE)",
        "STORED AS PARQUET",
        f"LOCATION {_literal(where)}",
        "TBLPROPERTIES (",
        ",\n".join(f"  {_literal(k)} = {_literal(v)}" for k, v in properties),
        ")",
    ])  # fmt: skip


def _trino(table: LakeTable, database: str, location: str) -> str:
    q = _double_quotes
    partitions = ", ".join(_literal(name) for name in s.PARTITION_COLUMNS)
    return "\n".join([
        f"CREATE TABLE IF NOT EXISTS {q(database)}.{q(table.name)} (",
        ",\n".join(_columns(table, Engine.TRINO, with_partition=True)),
        ")",
        "WITH (",
        f"  external_location = {_literal(f'{location}/{table.folder}')},",
        "  format = 'PARQUET',",
        f"  partitioned_by = ARRAY[{partitions}]",
        ")",
    ])  # fmt: skip


def _spark(table: LakeTable, database: str, location: str) -> str:
    q = _backticks
    return "\n".join([
        f"CREATE TABLE IF NOT EXISTS {q(database)}.{q(table.name)} (",
        ",\n".join(_columns(table, Engine.SPARK, with_partition=True)),
        ")",
        "USING parquet",
        f"PARTITIONED BY ({', '.join(q(name) for name in s.PARTITION_COLUMNS)})",
        f"LOCATION {_literal(f'{location}/{table.folder}')}",
    ])  # fmt: skip


def _find_partitions(engine: Engine, table: LakeTable, database: str) -> str | None:
    """The statement that makes the catalogue list the day folders already written (and, run
    after each nightly ingest, the new ones). Athena needs none: projection computes them."""
    if engine is Engine.TRINO:
        return (
            f"CALL system.sync_partition_metadata("
            f"{_literal(database)}, {_literal(table.name)}, 'ADD')"
        )
    if engine is Engine.SPARK:
        return f"MSCK REPAIR TABLE {_backticks(database)}.{_backticks(table.name)}"
    return None


def statements(
    engine: Engine | str,
    location: str,
    database: str = DEFAULT_DATABASE,
    since: dt.date = DEFAULT_SINCE,
) -> list[str]:
    """Every statement (without the closing ``;``) that makes the lake at ``location`` queryable
    from ``engine`` as ``database``.events, .hourly_features, .alerts and .incidents: the
    database, each table, and where the engine needs it, the statement that finds partitions.

    ``since`` is the first day Athena's partition projection considers (a day before the lake's
    first is harmless: days without a folder read as empty)."""
    engine = Engine(engine)
    where = lake_location(location)
    database = database_name(database)
    if engine is Engine.TRINO:
        out = [f"CREATE SCHEMA IF NOT EXISTS {_double_quotes(database)}"]
    else:
        out = [f"CREATE DATABASE IF NOT EXISTS {_backticks(database)}"]
    for table in lake_tables():
        if engine is Engine.ATHENA:
            out.append(_athena(table, database, where, since))
        elif engine is Engine.TRINO:
            out.append(_trino(table, database, where))
        else:
            out.append(_spark(table, database, where))
        found = _find_partitions(engine, table, database)
        if found is not None:
            out.append(found)
    return out


def script(
    engine: Engine | str,
    location: str,
    database: str = DEFAULT_DATABASE,
    since: dt.date = DEFAULT_SINCE,
) -> str:
    """:func:`statements` as one script, each statement ended by ``;``."""
    return (
        "".join(f"{sql};\n\n" for sql in statements(engine, location, database, since)).rstrip("\n")
        + "\n"
    )
