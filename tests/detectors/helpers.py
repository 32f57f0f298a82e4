"""Helpers shared by the detector tests: load sample CloudTrail files, build a context, run.

Kept in a plain module (not conftest) so tests import the functions by name.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from analytics.detect import history as history_tables
from analytics.detect.detectors import DetectionContext, RuleDetector, conform_findings
from analytics.detect.detectors._common import rule_events
from analytics.ingest.cloudtrail import parse_document
from analytics.lake import schema as s

SAMPLES = Path(__file__).parent / "samples"
ORG_ACCOUNTS = frozenset({"111122223333", "444455556666"})
"""The organisation of the samples: 111122223333 owns the keys, 444455556666 is a sister
account; 999988887777 is the outside account."""


def folder_name(detector: RuleDetector) -> str:
    """Samples of ``KMS.Foo`` live in ``samples/Foo``."""
    return detector.id.removeprefix("KMS.")


def events_from_documents(documents: Iterable[bytes], source: str = "sample") -> pl.DataFrame:
    frames = []
    for index, document in enumerate(documents):
        parsed = parse_document(document, f"{source}#{index}")
        assert not parsed.bad_records, parsed.bad_records
        frame = pl.from_arrow(parsed.events)
        assert isinstance(frame, pl.DataFrame)
        frames.append(frame)
    if not frames:
        return empty_events()
    return pl.concat(frames)


def events_from_files(paths: Iterable[Path]) -> pl.DataFrame:
    paths = sorted(paths)
    return events_from_documents((p.read_bytes() for p in paths), source="files")


def events_from_records(records: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    return events_from_documents([json.dumps({"Records": list(records)}).encode()])


def empty_events() -> pl.DataFrame:
    frame = pl.from_arrow(s.empty_events())
    assert isinstance(frame, pl.DataFrame)
    return frame


def context(
    events: pl.DataFrame,
    history: pl.DataFrame | None = None,
    *,
    history_days: int = 30,
    org_accounts: frozenset[str] = ORG_ACCOUNTS,
    settings: dict[str, Any] | None = None,
    day: dt.date | None = None,
) -> DetectionContext:
    """A context whose day is the events' (earliest) date; ``history`` (raw events) reaches the
    rules as detection gives it to them, through the compact history tables."""
    if day is None:
        day = events.get_column(s.EVENT_DATE).min() if events.height else dt.date(2026, 11, 28)
    assert isinstance(day, dt.date)
    return DetectionContext(
        day=day,
        events=rule_events(events.lazy()).collect(),
        history={
            name: frame.lazy()
            for name, frame in history_tables.compute(
                history if history is not None else empty_events()
            ).items()
        },
        history_days=history_days,
        org_accounts=org_accounts,
        settings=settings or {},
    )


def run(detector: RuleDetector, ctx: DetectionContext) -> pl.DataFrame:
    """Run a detector the way detection does: with only the history tables it declared, then
    conform its findings."""
    declared = {table.name: ctx.history[table.name] for table in detector.history}
    return conform_findings(detector, detector.detect(replace(ctx, history=declared)))


def sample_history(detector: RuleDetector) -> pl.DataFrame:
    folder = SAMPLES / folder_name(detector) / "history"
    return events_from_files(folder.glob("*.json")) if folder.is_dir() else empty_events()


OWNER = "111122223333"
SISTER = "444455556666"
OUTSIDER = "999988887777"


def key_arn(key_id: str = "1234abcd-12ab-34cd-56ef-1234567890ab", account: str = OWNER) -> str:
    return f"arn:aws:kms:us-east-1:{account}:key/{key_id}"


def role_identity(role: str, account: str = OWNER, session: str = "s-1") -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE{role.upper()}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            }
        },
    }


_counter = iter(range(10**9))


def record(
    event_name: str,
    when: str,
    *,
    who: dict[str, Any] | None = None,
    key: str | None = None,
    source: str = "kms.amazonaws.com",
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    error: str | None = None,
    message: str | None = None,
    recipient: str = OWNER,
) -> dict[str, Any]:
    """A compact, realistic CloudTrail record for behaviour tests (``when`` is ISO UTC)."""
    rec: dict[str, Any] = {
        "eventVersion": "1.10",
        "eventID": f"evt-{next(_counter):06d}",
        "eventTime": when,
        "eventSource": source,
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.24",
        "userAgent": "aws-cli/2.15.30",
        "userIdentity": who or role_identity("app"),
        "requestParameters": request if request is not None else ({"keyId": key} if key else None),
        "responseElements": response,
        "recipientAccountId": recipient,
        "eventType": "AwsApiCall",
    }
    if key:
        rec["resources"] = [{"ARN": key, "accountId": key.split(":")[4], "type": "AWS::KMS::Key"}]
    if error:
        rec["errorCode"] = error
    if message:
        rec["errorMessage"] = message
    return rec
