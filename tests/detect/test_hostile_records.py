"""Hostile strings in records flow through ingest, features, detection and reports as data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.detect.scoring import run
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from analytics.publish import reports
from tests import trail

SCRIPT = "<script>alert(1)</script>"
SQLISH = "'; DROP TABLE events; --"
HUGE = "A" * 10_240


def _hostile_day(day: dt.date) -> list[dict]:
    when = f"{day.isoformat()}T03:0{{}}:00Z"
    root = {"type": "Root", "arn": f"arn:aws:iam::{trail.ACCOUNT}:root", "accountId": trail.ACCOUNT}
    odd_role = trail.assumed_role(
        session='x"\n\r\t$(rm -rf /)`|', role_arn=f"arn:aws:iam::{trail.ACCOUNT}:role/{SQLISH}"
    )
    return [
        trail.kms_record("DescribeKey", when.format(1), seed="h1", identity=root, userAgent=SCRIPT),
        trail.kms_record("Decrypt", when.format(2), seed="h2", identity=odd_role, userAgent=HUGE,
                         request={"encryptionContext": {SQLISH: SCRIPT, "k\n|`*": HUGE}}),
        trail.kms_record("PutKeyPolicy", when.format(3), seed="h3", identity=root,
                         request={"keyId": trail.KEY_ID, "policyName": "default",
                                  "policy": json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                                                       "Action": SQLISH, "Resource": SCRIPT}]})},
                         readOnly=False),
    ]  # fmt: skip


def test_hostile_strings_never_break_detection_or_reports(tmp_path: Path) -> None:
    first = dt.date(2026, 11, 1)
    objects: dict[str, bytes] = {}
    for offset in range(9):
        day = first + dt.timedelta(days=offset)
        records = trail.day_of_records(day, 48, prefix="calm")
        if offset == 8:
            records += _hostile_day(day)
        delivered = dt.datetime(day.year, day.month, day.day, 23, 55, tzinfo=dt.UTC)
        objects[trail.log_key(delivered, f"H{offset}")] = trail.gz(records)
    trail.write_tree(tmp_path / "trail", objects)
    lake = LocalLake(tmp_path / "lake")
    summary = ingest(LocalSource(tmp_path / "trail"), lake, IngestOptions(workers=1))
    assert summary.records_quarantined == 0

    last = first + dt.timedelta(days=8)
    alerts = run(lake, last).alerts
    detectors = set(alerts.get_column(s.DETECTOR))
    assert {"KMS.RootKmsUsage", "KMS.KeyPolicyChanged"} <= detectors
    for reason in alerts.get_column(s.REASON):
        assert reason  # built, not broken

    _, files = reports.run(lake, last)
    page = files["report.html"].read_text()
    assert SCRIPT not in page and "&lt;script&gt;" in page
    markdown = files["report.md"].read_text()
    assert "\n|`*" not in markdown
    events = pl.read_parquet(lake.partition_files(last))
    assert SCRIPT in set(events.get_column(s.USER_AGENT))
