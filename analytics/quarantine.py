"""What ingest quarantined, read back for the reports: the lake's ``quarantine/`` folder.

Ingest writes one JSON file per refused object (``quarantine/objects/``) and one JSON Lines file
per object with refused records (``quarantine/records/``). An eventID clash — an eventID already
in the lake arriving with different content — is quarantined as a record that names the day its
event falls on, so the day's report can say how many events were held back and why.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson

EVENT_ID_CLASH = "eventID clash"
"""How the reason of a clash begins (ingest writes it, the reports count it)."""


def clashes_on(quarantine_dir: Path, day: dt.date) -> int:
    """eventID clashes quarantined for events of ``day``; unreadable lines are not counted
    (``keytrail lake check`` names unreadable quarantine files)."""
    folder = quarantine_dir / "records"
    if not folder.is_dir():
        return 0
    wanted = day.isoformat()
    count = 0
    for path in sorted(folder.glob("*.jsonl")):
        try:
            with path.open("rb") as lines:
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
        except OSError:
            continue
    return count
