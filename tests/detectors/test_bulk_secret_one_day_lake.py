"""Acceptance: a fresh lake holding one day, in which a person bulk-reads secrets and
parameters, raises a medium-or-higher alert naming them — through the real ingest and detect.

The day is written as a CloudTrail tree (native S3 layout, gzip log files per delivery) with the
records Secrets Manager and Parameter Store make KMS log: the person's identity with
``invokedBy``, the service as source and user agent, and the secret or parameter ARN as the
encryption context.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.detect.scoring import run
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from tests.trail import (
    ACCOUNT,
    KEY_ARN,
    REGION,
    assumed_role,
    day_of_records,
    gz,
    kms_record,
    log_key,
    write_tree,
)

DAY = dt.date(2026, 11, 2)
PERSON_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/"
    "AWSReservedSSO_AdministratorAccess_5f4e3d2c1b0a9f8e"
)
SECRETS, PARAMETERS = "secretsmanager.amazonaws.com", "AWS Internal"


def _read(index: int, when: str, via: str, context: dict[str, str]) -> dict[str, Any]:
    identity = assumed_role(PERSON_ROLE, session="morgan.diaz@example.com", invoked_by=via)
    return kms_record(
        when=when,
        seed=f"bulk-{index}",
        identity=identity,
        request={"encryptionContext": context, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        source_ip=via,
        userAgent=via,
    )


def _bulk_read() -> list[dict[str, Any]]:
    """36 secrets and 24 parameters between 16:20 and 16:26 UTC."""
    records = []
    for i in range(36):
        arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/service-{i:02d}/db-Xy12Zw"
        when = f"2026-11-02T16:{20 + i // 12:02d}:{(i % 12) * 5:02d}Z"
        records.append(_read(i, when, SECRETS, {"SecretARN": arn, "SecretVersionId": f"v-{i:04d}"}))
    for i in range(24):
        arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/service-{i:02d}/api-token"
        when = f"2026-11-02T16:{24 + i // 12:02d}:{(i % 12) * 5:02d}Z"
        records.append(_read(100 + i, when, PARAMETERS, {"PARAMETER_ARN": arn}))
    return records


def _write_day(root: Path) -> None:
    background = day_of_records(DAY, 600, prefix="bg")
    objects: dict[str, bytes] = {}
    for hour in range(24):
        chunk = [
            r
            for r in background + _bulk_read()
            if r["eventTime"].startswith(f"2026-11-02T{hour:02d}")
        ]
        delivered = dt.datetime(2026, 11, 2, hour, 55, tzinfo=dt.UTC)
        objects[log_key(delivered, f"H{hour:02d}")] = gz(chunk)
    write_tree(root, objects)


def test_a_person_bulk_reading_secrets_on_the_first_day_raises_an_alert(tmp_path: Path) -> None:
    _write_day(tmp_path / "trail")
    lake = LocalLake(tmp_path / "lake")
    ingest(LocalSource(tmp_path / "trail"), lake, IngestOptions(workers=1))

    alerts = run(lake, DAY, today=DAY).alerts
    bulk = alerts.filter(pl.col(s.DETECTOR) == "KMS.BulkSecretDecryption")

    assert bulk.height == 1, alerts.select(s.DETECTOR, s.REASON).rows()
    alert = bulk.row(0, named=True)
    assert alert[s.SEVERITY] in ("medium", "high", "critical")
    assert alert[s.ACTOR] == PERSON_ROLE
    assert alert[s.KEY_ARN] == KEY_ARN
    assert "36 Secrets Manager secret(s) (prod/service-00/db-Xy12Zw" in alert[s.REASON]
    assert "24 SSM parameter(s) (/prod/service-00/api-token" in alert[s.REASON]
    assert alert[s.EVIDENCE_COUNT] == 60
