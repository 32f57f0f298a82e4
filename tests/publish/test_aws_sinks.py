"""The S3 and Security Hub sinks, and the KMS inventory, through a moto server over HTTP."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import boto3
import orjson
import polars as pl
import pytest

from analytics.adapters.kms_inventory import snapshot
from analytics.adapters.lake import LocalLake, write_parquet_atomic
from analytics.adapters.securityhub import SecurityHub
from analytics.detect.scoring import alerts_path, read_alerts
from analytics.lake import schema as s
from analytics.publish.export import ExportItem, S3Sink, SecurityHubSink, export
from analytics.publish.export import sinks as sink_module
from analytics.publish.export.idempotency import Ledger
from analytics.publish.reports import rotation
from analytics.publish.reports.keyfacts import History
from tests.publish import fixture as f
from tests.publish import ocsf_schema
from tests.publish.helpers import ROOT_ALERT_ID, copy_lake, stuff_lake

MOTO_ACCOUNT = "123456789012"


@pytest.fixture
def lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    return copy_lake(fixture_lake, tmp_path / "lake")


def _add_alert(lake: LocalLake, alert_id: str) -> None:
    alerts = read_alerts(lake, f.DAY)
    extra = alerts.head(1).with_columns(pl.lit(alert_id).alias(s.ALERT_ID))
    write_parquet_atomic(pl.concat([alerts, extra]).to_arrow().cast(s.ALERT_SCHEMA),
                         alerts_path(lake, f.DAY))  # fmt: skip


# --- S3 ---------------------------------------------------------------------------------------


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_s3_sink_writes_one_object_of_ocsf_lines(
    lake: LocalLake, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    result = export(lake, f.DAY, S3Sink(f"s3://{bucket}/keytrail/", endpoint_url=s3_endpoint))
    assert result.sent == 5 and result.destination == f"s3://{bucket}/keytrail"
    [(key, body)] = _objects(s3, bucket).items()
    assert key.startswith("keytrail/event_date=2026-11-09/alerts-") and key.endswith(".ocsf.jsonl")
    lines = [orjson.loads(line) for line in body.splitlines()]
    assert [line["class_uid"] for line in lines] == [2004] * 5 + [2005]  # alerts, then incidents
    ocsf_schema.assert_valid(lines)


def test_s3_rerun_puts_nothing_and_new_alerts_go_to_a_new_object(
    lake: LocalLake, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    sink = S3Sink(f"s3://{bucket}/k", endpoint_url=s3_endpoint)
    export(lake, f.DAY, sink)
    assert export(lake, f.DAY, sink).sent == 0
    assert len(_objects(s3, bucket)) == 1
    _add_alert(lake, "e" * 32)
    assert export(lake, f.DAY, sink).sent == 1
    bodies = sorted(_objects(s3, bucket).values(), key=len)
    assert len(bodies) == 2 and orjson.loads(bodies[0])["finding_info"]["uid"] == "e" * 32


def test_s3_sink_names_a_missing_bucket(lake: LocalLake, s3_endpoint: str) -> None:
    with pytest.raises(sink_module.SinkError, match="does not exist"):
        export(lake, f.DAY, S3Sink("s3://no-such-bucket-kt/x", endpoint_url=s3_endpoint))


# --- Security Hub -----------------------------------------------------------------------------


@pytest.fixture
def hub(s3_endpoint: str) -> SecurityHub:
    client = boto3.client("securityhub", endpoint_url=s3_endpoint, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.ResourceConflictException):
        client.enable_security_hub()
    return SecurityHub("us-east-1", endpoint_url=s3_endpoint, max_attempts=2)


def test_security_hub_findings_are_imported_and_read_back(
    lake: LocalLake, hub: SecurityHub
) -> None:
    result = export(lake, f.DAY, SecurityHubSink(hub))
    assert (result.sent, result.failed) == (5, [])
    assert result.destination == f"securityhub:us-east-1:{MOTO_ACCOUNT}"
    ids = [row[s.ALERT_ID] for row in read_alerts(lake, f.DAY).iter_rows(named=True)
           if row[s.SUPPRESSED_BY] is None]  # fmt: skip
    found = {finding["Id"]: finding for finding in hub.get_findings(ids)}
    assert sorted(found) == sorted(ids)
    policy = found["2c3d4e5f60718293a4b5c6d7e8f90a1b"]
    assert policy["Title"] == "KMS key policy changed"
    assert policy["GeneratorId"] == "keytrail/KMS.KeyPolicyChanged"
    assert policy["Resources"][0] == {"Type": "AwsKmsKey", "Id": f.K_PAY, "Partition": "aws",
                                      "Region": f.REGION}  # fmt: skip
    assert policy["ProductArn"].endswith(f":{MOTO_ACCOUNT}:product/{MOTO_ACCOUNT}/default")
    keyless = found["5f60718293a4b5c6d7e8f90a1b2c3d4e"]
    assert keyless["Resources"][0]["Type"] == "AwsAccount"
    assert export(lake, f.DAY, SecurityHubSink(hub)).sent == 0


def test_failed_findings_are_reported_and_retried_next_run(
    lake: LocalLake, hub: SecurityHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_id = "3d4e5f60718293a4b5c6d7e8f90a1b2c"
    real = sink_module.asff.finding

    def breaking(alert: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        finding = real(alert, **kwargs)
        return {**finding, "Resources": []} if finding["Id"] == broken_id else finding

    monkeypatch.setattr(sink_module.asff, "finding", breaking)
    result = export(lake, f.DAY, SecurityHubSink(hub))
    assert result.sent == 4
    assert [failure[s.ALERT_ID] for failure in result.failed] == [broken_id]
    assert "Resources" in result.failed[0]["reason"]
    destination = f"securityhub:us-east-1:{MOTO_ACCOUNT}"
    assert broken_id not in Ledger(lake, "securityhub").sent(destination)
    monkeypatch.setattr(sink_module.asff, "finding", real)
    again = export(lake, f.DAY, SecurityHubSink(hub))
    assert (again.sent, again.already_sent) == (1, 4)


def test_security_hub_takes_every_finding_of_a_stuffed_day_bounded_in_bytes(
    lake: LocalLake, hub: SecurityHub
) -> None:
    stuff_lake(lake, f.DAY, f.event_id("d-root"), "ü" * (512 * 1024), extra_evidence=10_000)
    result = export(lake, f.DAY, SecurityHubSink(hub))
    assert (result.sent, result.failed) == (5, [])
    root = next(iter(hub.get_findings([ROOT_ALERT_ID])))
    assert len(orjson.dumps(root)) < 64 * 1024
    description = root["Description"]
    assert description.endswith("…[clipped, 1048617 bytes]")
    assert len(description.encode()) <= 1024  # Security Hub's limit, in bytes not characters
    ids = root["ProductFields"]["keytrail/evidence_event_ids"].split(",")
    assert len(ids) == 20 and root["ProductFields"]["keytrail/evidence_count"] == "10001"


def test_security_hub_batches_hold_at_most_100_findings(hub: SecurityHub) -> None:
    items = [ExportItem(f"{i:032x}", {}, {}) for i in range(250)]
    sizes = [len(batch) for batch in SecurityHubSink(hub, account_id=MOTO_ACCOUNT).batches(items)]
    assert sizes == [100, 100, 50]


def test_security_hub_refuses_more_than_100_in_one_call(hub: SecurityHub) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        hub.import_findings([{"Id": str(i)} for i in range(101)])


# --- KMS inventory ----------------------------------------------------------------------------


def test_kms_inventory_reads_keys_rotation_and_aliases(s3_endpoint: str) -> None:
    region = "eu-north-1"
    kms = boto3.client("kms", endpoint_url=s3_endpoint, region_name=region)
    rotating = kms.create_key(Description="rotating")["KeyMetadata"]
    kms.enable_key_rotation(KeyId=rotating["KeyId"])
    kms.create_alias(AliasName="alias/inventory-test", TargetKeyId=rotating["KeyId"])
    kms.rotate_key_on_demand(KeyId=rotating["KeyId"])
    signing = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    doomed = kms.create_key(Description="doomed")["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)

    result = snapshot([region], endpoint_url=s3_endpoint)
    keys = {k.key_arn: k for k in result.keys}
    assert result.errors == []
    first = keys[rotating["Arn"]]
    assert (first.rotation_enabled, first.aliases, first.key_manager) == (
        True, ("alias/inventory-test",), "CUSTOMER",
    )  # fmt: skip
    assert first.rotations >= 1 and first.last_rotation_date is not None
    assert keys[signing["Arn"]].key_spec == "RSA_2048"
    assert keys[doomed["Arn"]].key_state == "PendingDeletion"

    report = rotation.build(History({}, {}, []), dt.date(2026, 11, 20), result.keys)
    rows = {row[s.KEY_ARN]: row for row in report.iter_rows(named=True)}
    assert rows[rotating["Arn"]]["rotation_source"] == "kms-api"
    assert rows[rotating["Arn"]]["rotation_status"] in ("ENABLED", "OVERDUE")
    assert rows[signing["Arn"]]["rotation_status"] == "NOT_APPLICABLE"
    assert rows[doomed["Arn"]]["pending_deletion"] is True
