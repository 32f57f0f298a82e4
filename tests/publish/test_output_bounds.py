"""Every exported finding is bounded: one stuffed record string cannot block a SIEM delivery.

The hostile lake is the fixture lake with a 1 MiB user agent on the root alert's evidence event
(quoted in the alert's reason, as the root-usage rule does) and 10,000 more evidence event IDs
on that alert — the first alert of the day, ahead of the critical one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.adapters.lake import LocalLake
from analytics.detect.scoring import read_alerts
from analytics.publish.export import (
    HecSink,
    OcsfFileSink,
    RetryPolicy,
    SinkError,
    export,
    hec,
    ocsf,
)
from analytics.publish.export import bounds as b
from analytics.publish.export.idempotency import Ledger
from analytics.publish.export.sinks import _day_events, prepare
from flows.sinks import HEC_TOKEN_ENV
from tests.publish import fixture as f
from tests.publish import ocsf_schema
from tests.publish.conftest import Listener
from tests.publish.helpers import (
    HEC_OK,
    HEC_TOKEN,
    MEGABYTE_AGENT,
    ROOT_ALERT_ID,
    alert_keys,
    copy_lake,
    detections,
    stuff_lake,
)
from tests.publish.test_cli_publish import _run

MARKER = "…[clipped, 1048576 bytes]"
HEC_LIMIT = 1_000_000  # Splunk's default max_content_length
LINE_LIMIT = 64 * 1024


@pytest.fixture
def hostile_lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    lake = copy_lake(fixture_lake, tmp_path / "lake")
    stuff_lake(lake, f.DAY, f.event_id("d-root"), MEGABYTE_AGENT, extra_evidence=10_000)
    return lake


def _sink(url: str) -> HecSink:
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01, sleep=lambda _: None)
    return HecSink(url, HEC_TOKEN, policy=policy, acks=False)


def _events(bodies: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for body in bodies for line in body.splitlines()]


def test_every_ocsf_line_is_under_64_kib_and_says_what_was_clipped(
    hostile_lake: LocalLake, tmp_path: Path
) -> None:
    path = tmp_path / "out.ocsf.jsonl"
    result = export(hostile_lake, f.DAY, OcsfFileSink(path))
    raw_lines = path.read_bytes().splitlines()
    assert (result.sent, result.incidents_sent, len(raw_lines)) == (5, 1, 6)
    assert max(len(line) + 1 for line in raw_lines) < LINE_LIMIT
    findings = {line["finding_info"]["uid"]: line
                for line in detections(map(orjson.loads, raw_lines))}  # fmt: skip
    root = findings[ROOT_ALERT_ID]
    ocsf_schema.assert_valid(map(orjson.loads, raw_lines))
    agent = root["evidences"][0]["http_request"]["user_agent"]
    assert agent.startswith("Boto3/1.35 AAAA") and agent.endswith(MARKER)
    assert len(agent.encode()) <= b.USER_AGENT_BYTES
    assert root["message"].endswith("…[clipped, 1048617 bytes]")  # the sentence around it too
    assert len(root["finding_info"]["related_events"]) == b.MAX_RELATED_EVENTS
    assert root["finding_info"]["related_events_count"] == 10_001


def test_a_finding_stays_under_the_limit_whatever_its_strings() -> None:
    alert = read_alerts_row()
    huge = "é" * 400_000  # two bytes each: clipping must not split one
    alert.update({"title": huge, "actor": huge, "baseline": huge, "observed_pattern": huge,
                  "top_features": [{"name": huge, "value": 1.0, "text": huge}] * 500})  # fmt: skip
    events = [{"event_id": huge, "user_agent": huge, "principal_arn": huge}] * 50
    document = ocsf.finding(alert, product_version="0", events=events)
    assert b.size(document) < b.MAX_FINDING_BYTES
    ocsf_schema.assert_valid([document])
    assert document["finding_info"]["title"].endswith("…[clipped, 800000 bytes]")


def read_alerts_row() -> dict[str, Any]:
    return dict(next(f.alerts().iter_rows(named=True)))


def test_hec_delivers_every_alert_past_a_megabyte_user_agent(
    listener: Listener, hostile_lake: LocalLake
) -> None:
    listener.max_body = HEC_LIMIT
    result = export(hostile_lake, f.DAY, _sink(listener.url))
    assert (result.sent, result.failed) == (5, [])
    events = [e for e in _events(listener.delivered) if e["fields"]["alert_id"]]
    assert len(events) == 5
    assert all(len(hec.encode(event)) < LINE_LIMIT for event in events)
    root = next(e for e in events if e["fields"]["alert_id"] == ROOT_ALERT_ID)
    assert root["event"]["evidences"][0]["http_request"]["user_agent"].endswith(MARKER)
    assert {e["fields"]["severity"] for e in events} >= {"Critical", "High"}


def _event_sizes(lake: LocalLake) -> dict[str, int]:
    items = prepare(read_alerts(lake, f.DAY), _day_events(lake, f.DAY))
    return {item.alert_id: len(hec.encode(hec.envelope(item.finding))) for item in items}


def test_an_event_refused_alone_fails_by_itself_and_the_rest_are_delivered(
    listener: Listener, hostile_lake: LocalLake
) -> None:
    sizes = _event_sizes(hostile_lake)
    largest = max(sizes, key=sizes.__getitem__)
    listener.max_body = sizes[largest] - 1  # every event fits alone but the largest
    sink = _sink(listener.url)
    result = export(hostile_lake, f.DAY, sink)
    assert result.sent == 4
    assert [failure["alert_id"] for failure in result.failed] == [largest]
    assert "HTTP 413" in result.failed[0]["reason"] and "too large" in result.failed[0]["reason"]
    assert HEC_TOKEN not in result.failed[0]["reason"]
    delivered = [e["fields"]["alert_id"] for e in _events(listener.delivered)
                 if e["fields"]["alert_id"]]  # fmt: skip
    assert sorted(delivered) == sorted(set(sizes) - {largest})
    ledger = Ledger(hostile_lake, "splunk-hec").sent(sink.destination)
    assert alert_keys(ledger) == set(delivered)
    again = export(hostile_lake, f.DAY, sink)  # the refused one is tried again, alone
    assert (again.sent, again.already_sent, len(again.failed)) == (0, 4, 1)


def test_what_a_split_batch_delivered_is_recorded_before_a_later_refusal(
    listener: Listener, hostile_lake: LocalLake
) -> None:
    sizes = list(_event_sizes(hostile_lake).values())
    listener.max_body = sum(sizes) - 1  # the whole batch is too large, its halves are not
    listener.responses = [HEC_OK, (400, b'{"text":"Incorrect index","code":7}', {})]
    sink = _sink(listener.url)
    with pytest.raises(SinkError) as caught:
        export(hostile_lake, f.DAY, sink)
    assert caught.value.result is not None and caught.value.result.sent == 3
    first_half = {e["fields"]["alert_id"] for e in _events(listener.delivered)}
    assert len(first_half) == 3  # five alerts and the incident: halves of three
    assert Ledger(hostile_lake, "splunk-hec").sent(sink.destination) == first_half


def test_operations_doc_states_the_bounds_in_force() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text("utf-8")
    section = doc.split("## Output bounds", 1)[1].split("\n## ", 1)[0]
    stated = {
        b.MAX_FINDING_BYTES, b.USER_AGENT_BYTES, b.NAME_BYTES, b.IDENTIFIER_BYTES, b.TEXT_BYTES,
        b.MAX_EVIDENCE_EVENTS, b.MAX_RELATED_EVENTS, b.ASFF_RELATED_IDS, b.ASFF_TITLE_BYTES,
        b.ASFF_DESCRIPTION_BYTES, b.ASFF_GENERATOR_ID_BYTES, b.ASFF_PRODUCT_FIELD_BYTES,
        b.ASFF_PRODUCT_FIELD_KEY_BYTES, b.ASFF_RECOMMENDATION_BYTES, b.DISPLAY_CHARS,
        b.ASFF_SEVERITY_ORIGINAL_BYTES, b.ASFF_RELATED_FINDINGS, hec.MAX_BATCH_BYTES,
        b.CSV_CELL_BYTES, b.TERMINAL_BYTES,
    }  # fmt: skip
    for value in sorted(stated):
        assert re.search(rf"\b{value:,}\b", section), (
            f"{value:,} is not in the Output bounds section"
        )
    assert b.CLIP_MARKER.format(size=1048576) in section


def test_cli_export_delivers_the_rest_names_the_refused_event_and_exits_1(
    listener: Listener, hostile_lake: LocalLake
) -> None:
    sizes = _event_sizes(hostile_lake)
    largest = max(sizes, key=sizes.__getitem__)
    listener.max_body = sizes[largest] - 1
    result = _run("export", "--lake", hostile_lake.root, "--date", f.DAY.isoformat(), "--sink",
                  "splunk-hec", "--hec-url", listener.url, "--hec-acks", "off",
                  env={HEC_TOKEN_ENV: HEC_TOKEN})  # fmt: skip
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "sent 4," in output and "failed 1" in output
    assert f"failed {largest}: Splunk HEC refused the event as too large" in output
    assert HEC_TOKEN not in result.output


@pytest.mark.parametrize("char", ["A", "é", "€", "🔑"])
@pytest.mark.parametrize("limit", [64, 65, 66, 67, 100])
def test_clip_cuts_by_bytes_at_a_code_point_boundary(char: str, limit: int) -> None:
    value = char * 1000
    clipped = b.clip(value, limit)
    size = len(value.encode())
    assert len(clipped.encode()) <= limit
    head, marker = clipped.split("…", 1)
    assert marker == f"[clipped, {size} bytes]"
    assert head and set(head) == {char}


def test_clip_keeps_a_value_within_its_limit_and_replaces_lone_surrogates() -> None:
    assert b.clip("é" * 32, 64) == "é" * 32
    assert b.clip("a\ud800b", 64) == "a\ufffdb"
