"""What ingest quarantined, read back for the reports: the lake's ``quarantine/`` folder.

Ingest writes one JSON file per refused object (``quarantine/objects/``) and one JSON Lines file
per object with refused records (``quarantine/records/``). An eventID clash — an eventID already
in the lake arriving with different content — is quarantined as a record that names the day its
event falls on, so the day's report can say how many events were held back and why.
"""

from __future__ import annotations

import datetime as dt

import orjson

from analytics.adapters.lake import LocalLake

EVENT_ID_CLASH = "eventID clash"
"""How the reason of a clash begins (ingest writes it, the reports count it)."""


def clashes_on(lake: LocalLake, day: dt.date) -> int:
    """eventID clashes quarantined for events of ``day``; unreadable lines are not counted
    (``keytrail lake check`` names unreadable quarantine files)."""
    wanted = day.isoformat()
    count = 0
    for file in lake.store.files("quarantine/records"):
        if not file.name.endswith(".jsonl"):
            continue
        try:
            lines = lake.store.read_bytes(file.relative).splitlines()
        except OSError:
            continue
        for line in lines:
            if EVENT_ID_CLASH.encode() not in line:
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if (
                isinstance(record, dict)
                and str(record.get("reason", "")).startswith(EVENT_ID_CLASH)
                and record.get("event_date") == wanted
            ):
                count += 1
    return count
