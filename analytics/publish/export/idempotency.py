"""Per-sink ledgers of what was sent: why a rerun sends nothing twice.

``LAKE/_state/exports/<sink>.parquet`` holds one row per (alert, destination) that a sink
accepted. The export reads it to skip alerts already delivered and appends to it *after* each
batch the sink confirmed — the same order the ingest uses for its state: data first, then the
record of it. A crash between the two can at worst send one batch again, never lose one; and
every sink is also keyed on ``alert_id`` on the receiving side (the OCSF ``finding_info.uid``,
the ASFF ``Id``, HEC's ``fields.alert_id``, the S3 object name), so even that repeat is
recognisable.

The destination is part of the key: sending the same alerts to a second Splunk or a new bucket
is a different delivery. One export per sink at a time is assumed (the nightly flow runs them in
sequence); concurrent exports to one sink could both send a batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from analytics.adapters.lake import LocalLake
from analytics.lake import schema as s

DESTINATION = "destination"
EXPORTED_AT = "exported_at"

LEDGER_SCHEMA = pa.schema(
    [
        pa.field(s.ALERT_ID, pa.string(), nullable=False),
        pa.field(DESTINATION, pa.string(), nullable=False),
        pa.field(s.EVENT_DATE, pa.date32(), nullable=False),
        pa.field(EXPORTED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""One row per alert a sink accepted for a destination (secrets never appear in it)."""

SINK_KINDS: tuple[str, ...] = ("ocsf-file", "s3", "splunk-hec", "securityhub")
"""The sinks, by the name each ledger and ``--sink`` use."""
SINK_NAMES = frozenset(SINK_KINDS)


@dataclass(frozen=True)
class Ledger:
    lake: LocalLake
    sink: str

    def __post_init__(self) -> None:
        if self.sink not in SINK_NAMES:
            raise ValueError(f"unknown sink {self.sink!r}")

    @property
    def key(self) -> str:
        return f"_state/exports/{self.sink}.parquet"

    @property
    def path(self) -> Path:
        return self.lake.root / self.key

    def read(self) -> pa.Table:
        found = self.lake.store.file(self.key)
        if found is None:
            return LEDGER_SCHEMA.empty_table()
        return self.lake.store.read_table([found]).cast(LEDGER_SCHEMA)

    def sent(self, destination: str) -> set[str]:
        """IDs of the alerts already delivered to ``destination``."""
        table = self.read()
        ids = table.column(s.ALERT_ID).to_pylist()
        places = table.column(DESTINATION).to_pylist()
        return {alert for alert, place in zip(ids, places, strict=True) if place == destination}

    def record(
        self, alert_ids: Iterable[str], destination: str, day: dt.date, at: dt.datetime
    ) -> int:
        """Append ``alert_ids`` as delivered; returns how many were new to the ledger."""
        already = self.sent(destination)
        new = sorted(set(alert_ids) - already)
        if not new:
            return 0
        rows = pa.table(
            {
                s.ALERT_ID: new,
                DESTINATION: [destination] * len(new),
                s.EVENT_DATE: [day] * len(new),
                EXPORTED_AT: [at] * len(new),
            },
            schema=LEDGER_SCHEMA,
        )
        self.lake.store.write_parquet(self.key, pa.concat_tables([self.read(), rows]))
        return len(new)
