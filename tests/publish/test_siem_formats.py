"""What SIEMs pivot and triage on: OCSF observables and type IDs, incidents as OCSF Incident
Findings beside their Detection Findings, and ASFF as AWS asks finding providers to send it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import orjson
import polars as pl
import pytest
from botocore.validate import ParamValidator

from analytics.adapters.lake import LocalLake, write_parquet_atomic
from analytics.detect.scoring import incidents_path, read_alerts, read_incidents
from analytics.lake import schema as s
from analytics.publish.export import OcsfFileSink, asff, export, ocsf, prepare
from analytics.publish.export import bounds as b
from analytics.publish.export.sinks import _day_events
from tests.publish import fixture as f
from tests.publish import ocsf_schema
from tests.publish.helpers import ROOT_ALERT_ID, copy_lake, detections

VERSION = "0.0.0-test"
ACCOUNT = "123456789012"


@pytest.fixture
def lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    return copy_lake(fixture_lake, tmp_path / "lake")


def _items(lake: LocalLake) -> dict[str, Any]:
    items = prepare(read_alerts(lake, f.DAY), _day_events(lake, f.DAY), VERSION)
    return {item.alert_id: item for item in items}


# --- OCSF observables and type IDs ------------------------------------------------------------


def test_observables_name_actor_key_ips_accounts_and_user_agent(lake: LocalLake) -> None:
    root = _items(lake)[ROOT_ALERT_ID].finding
    by_type = {(o["type_id"], o["value"]) for o in root["observables"]}
    assert (2, "203.0.113.50") in by_type  # the evidence's source IP
    assert (16, f.SCRIPT_AGENT) in by_type  # its user agent, as sent
    assert (35, f.ACCOUNT) in by_type
    assert any(type_id == 31 for type_id, _ in by_type)  # the actor
    policy = _items(lake)["2c3d4e5f60718293a4b5c6d7e8f90a1b"].finding
    assert (10, f.K_PAY) in {(o["type_id"], o["value"]) for o in policy["observables"]}


def test_observable_type_ids_are_the_ones_ocsf_1_5_0_defines(lake: LocalLake) -> None:
    for type_id, name in ocsf.OBSERVABLE_TYPES.values():
        assert ocsf_schema.enum_caption("observable", "type_id", type_id) == name
    for type_id, name in ocsf.USER_TYPES.values():
        assert ocsf_schema.enum_caption("user", "type_id", type_id) == name
    for item in _items(lake).values():
        for observable in item.finding["observables"]:
            caption = ocsf_schema.enum_caption("observable", "type_id", observable["type_id"])
            assert observable["type"] == caption


def test_every_type_has_its_type_id(lake: LocalLake) -> None:
    findings = [item.finding for item in _items(lake).values()]
    users = [e["actor"]["user"] for d in findings for e in d["evidences"] if "type" in e["actor"]["user"]]  # fmt: skip
    assert users and all("type_id" in user for user in users)
    assert all(ocsf_schema.type_ids_missing(d) == [] for d in findings)


def test_a_source_address_that_is_not_an_ip_is_never_written_as_one() -> None:
    event = {s.EVENT_ID: "e1", s.SOURCE_IP: "\u202e1.2.3.4", s.USER_AGENT: "x"}
    alert = dict(next(f.alerts().iter_rows(named=True)))
    finding = ocsf.finding(alert, product_version=VERSION, events=[event])
    assert finding["evidences"][0]["src_endpoint"] == {"svc_name": "\u202e1.2.3.4"}
    assert all(o["type_id"] != 2 for o in finding["observables"])
    ocsf_schema.assert_valid([finding])


# --- incidents --------------------------------------------------------------------------------


def _ocsf_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_each_incident_is_an_incident_finding_linking_its_detection_findings(
    lake: LocalLake, tmp_path: Path
) -> None:
    path = tmp_path / "out.jsonl"
    result = export(lake, f.DAY, OcsfFileSink(path), version=VERSION)
    lines = _ocsf_lines(path)
    [incident] = [line for line in lines if line["class_uid"] == 2005]
    [row] = read_incidents(lake, f.DAY).iter_rows(named=True)
    exported = {d["finding_info"]["uid"]: d for d in detections(lines)}
    linked = [info["uid"] for info in incident["finding_info_list"]]
    assert sorted(linked) == sorted(set(row[s.ALERT_IDS]) & set(exported))
    assert all(exported[uid]["metadata"]["correlation_uid"] == row[s.INCIDENT_ID] for uid in linked)
    assert incident["metadata"]["correlation_uid"] == row[s.INCIDENT_ID]
    assert (incident["activity_id"], incident["type_uid"]) == (1, 200501)
    assert (result.incidents, result.incidents_sent) == (1, 1)
    ocsf_schema.assert_valid(lines)


def test_an_incident_that_grew_is_sent_again_as_a_new_version_and_a_rerun_sends_nothing(
    lake: LocalLake, tmp_path: Path
) -> None:
    sink = OcsfFileSink(tmp_path / "out.jsonl")
    export(lake, f.DAY, sink, version=VERSION)
    assert export(lake, f.DAY, sink, version=VERSION).incidents_sent == 0
    incidents = read_incidents(lake, f.DAY)
    [row] = incidents.iter_rows(named=True)
    joined = ROOT_ALERT_ID if ROOT_ALERT_ID not in row[s.ALERT_IDS] else None
    assert joined is not None
    grown = incidents.with_columns(
        pl.col(s.ALERT_IDS).list.concat(pl.lit([joined], dtype=pl.List(pl.String)))
    )
    write_parquet_atomic(grown.to_arrow().cast(s.INCIDENT_SCHEMA), incidents_path(lake, f.DAY))
    again = export(lake, f.DAY, sink, version=VERSION)
    assert (again.sent, again.incidents_sent) == (0, 1)
    views = [line for line in _ocsf_lines(sink.path) if line["class_uid"] == 2005]
    assert len(views) == 2
    assert views[0]["metadata"]["correlation_uid"] == views[1]["metadata"]["correlation_uid"]
    assert views[0]["metadata"]["uid"] != views[1]["metadata"]["uid"]
    assert joined in {info["uid"] for info in views[1]["finding_info_list"]}


# --- ASFF -------------------------------------------------------------------------------------


def _import_shape() -> Any:
    model = botocore.session.get_session().get_service_model("securityhub")
    return model.operation_model("BatchImportFindings").input_shape


def _asff(lake: LocalLake) -> list[dict[str, Any]]:
    return [asff.finding(item.alert, account_id=ACCOUNT, region=f.REGION, related=item.related)
            for item in _items(lake).values()]  # fmt: skip


def test_asff_passes_botocores_validator_and_sends_no_deprecated_attribute(
    lake: LocalLake,
) -> None:
    findings = _asff(lake)
    report = ParamValidator().validate({"Findings": findings}, _import_shape())
    assert not report.has_errors(), report.generate_report()
    model = botocore.session.get_session().get_service_model("securityhub")
    deprecated = {f"Severity.{name}" for name, shape in model.shape_for("Severity").members.items()
                  if (shape.documentation or "").startswith("<p>Deprecated")}  # fmt: skip
    assert deprecated == set(asff.DEPRECATED)
    for finding in findings:
        for where in (finding, finding["FindingProviderFields"]):
            assert "Normalized" not in where.get("Severity", {})
            assert "Product" not in where.get("Severity", {})


def test_asff_severity_and_types_go_through_finding_provider_fields(lake: LocalLake) -> None:
    for finding in _asff(lake):
        assert "Severity" not in finding and "Types" not in finding
        provided = finding["FindingProviderFields"]
        assert provided["Severity"]["Label"] in {
            "INFORMATIONAL",
            "LOW",
            "MEDIUM",
            "HIGH",
            "CRITICAL",
        }
        assert provided["Types"] and "/" in provided["Types"][0]


def test_asff_links_the_alerts_of_one_incident(lake: LocalLake) -> None:
    [row] = read_incidents(lake, f.DAY).iter_rows(named=True)
    members = set(row[s.ALERT_IDS]) & set(_items(lake))
    by_id = {finding["Id"]: finding for finding in _asff(lake)}
    for alert_id in members:
        related = by_id[alert_id]["FindingProviderFields"]["RelatedFindings"]
        assert {r["Id"] for r in related} == members - {alert_id}
        assert all(r["ProductArn"] == by_id[alert_id]["ProductArn"] for r in related)
    lone = set(by_id) - members
    assert lone and all("RelatedFindings" not in by_id[i]["FindingProviderFields"] for i in lone)


def test_asff_related_findings_stay_within_security_hubs_limit() -> None:
    alert = dict(next(f.alerts().iter_rows(named=True)))
    others = [f"{n:032x}" for n in range(40)]
    finding = asff.finding(alert, account_id=ACCOUNT, region=f.REGION, related=others)
    assert len(finding["FindingProviderFields"]["RelatedFindings"]) == b.ASFF_RELATED_FINDINGS
    report = ParamValidator().validate({"Findings": [finding]}, _import_shape())
    assert not report.has_errors(), report.generate_report()


def test_asff_text_is_clipped_by_bytes_everywhere() -> None:
    alert = dict(next(f.alerts().iter_rows(named=True)))
    huge = "€" * 100_000  # three bytes each
    alert.update({s.TITLE: huge, s.REASON: huge, s.RUNBOOK: huge, s.DETECTOR: huge,
                  s.SEVERITY: huge, s.ACTOR: huge, s.BASELINE: huge})  # fmt: skip
    finding = asff.finding(alert, account_id=ACCOUNT, region=f.REGION)
    limits = {"Title": b.ASFF_TITLE_BYTES, "Description": b.ASFF_DESCRIPTION_BYTES,
              "GeneratorId": b.ASFF_GENERATOR_ID_BYTES}  # fmt: skip
    for name, limit in limits.items():
        assert len(finding[name].encode()) <= limit, name
    assert (
        len(finding["Remediation"]["Recommendation"]["Text"].encode())
        <= b.ASFF_RECOMMENDATION_BYTES
    )
    original = finding["FindingProviderFields"]["Severity"]["Original"]
    assert len(original.encode()) <= b.ASFF_SEVERITY_ORIGINAL_BYTES
    assert all(
        len(v.encode()) <= b.ASFF_PRODUCT_FIELD_BYTES for v in finding["ProductFields"].values()
    )
    assert b.size(finding) < b.MAX_FINDING_BYTES
