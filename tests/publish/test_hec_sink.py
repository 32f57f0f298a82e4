"""The Splunk HEC sink against a real HTTP listener on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.adapters.lake import LocalLake
from analytics.publish.export import HecSink, RetryPolicy, SinkError, export
from analytics.publish.export.idempotency import Ledger
from tests.publish import fixture as f
from tests.publish.conftest import Listener
from tests.publish.helpers import HEC_OK as OK
from tests.publish.helpers import HEC_TOKEN as TOKEN
from tests.publish.helpers import copy_lake, detections


@pytest.fixture
def lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    return copy_lake(fixture_lake, tmp_path / "lake")


def _sink(url: str, sleeps: list[float] | None = None, **kwargs: Any) -> HecSink:
    """A sink for a collector without indexer acknowledgement (tests/publish/test_hec_acks.py
    has the acknowledged deliveries)."""
    record = sleeps if sleeps is not None else []
    policy = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, sleep=record.append)
    kwargs.setdefault("acks", False)
    return HecSink(url, TOKEN, policy=policy, **kwargs)


def _events(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in request["body"].splitlines()]


def test_accepted_batch_carries_ocsf_findings_and_the_token_header(
    listener: Listener, lake: LocalLake
) -> None:
    result = export(lake, f.DAY, _sink(listener.url))
    assert (result.sent, result.batches, result.retries) == (5, 1, 0)
    [request] = listener.requests
    assert request["path"] == "/services/collector/event"
    assert request["headers"]["Authorization"] == f"Splunk {TOKEN}"
    events = detections(e["event"] for e in _events(request))
    assert len(events) == 5 and len(_events(request)) == 6  # and the day's incident, last
    events = [e for e in _events(request) if e["event"]["class_uid"] == 2004]
    for event in events:
        assert event["sourcetype"] == "ocsf:detection_finding"
        assert event["event"]["class_uid"] == 2004
        assert event["fields"]["alert_id"] == event["event"]["finding_info"]["uid"]
        assert event["time"] == event["event"]["time"] / 1000


def test_alerts_are_sent_in_batches(listener: Listener, lake: LocalLake) -> None:
    result = export(lake, f.DAY, _sink(listener.url, max_events=2))
    assert (result.sent, result.incidents_sent, result.batches) == (5, 1, 3)
    assert [len(_events(r)) for r in listener.requests] == [2, 2, 2]


def test_503_is_retried_with_backoff_then_accepted(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [(503, b'{"text":"Server is busy","code":9}', {}), OK]
    sleeps: list[float] = []
    result = export(lake, f.DAY, _sink(listener.url, sleeps))
    assert (result.sent, result.retries) == (5, 1)
    assert sleeps == [0.01]
    assert (
        len(listener.requests) == 2 and listener.requests[0]["body"] == listener.requests[1]["body"]
    )


def test_throttling_honours_retry_after_and_backs_off(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [(429, b"", {"Retry-After": "0.03"}), (500, b"", {}), OK]
    sleeps: list[float] = []
    result = export(lake, f.DAY, _sink(listener.url, sleeps))
    assert result.sent == 5
    assert sleeps == [0.03, 0.02]


def test_400_fails_clearly_and_records_nothing(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [(400, b'{"text":"Invalid data format","code":6}', {})]
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink(listener.url))
    message = str(caught.value)
    assert "HTTP 400" in message and "Invalid data format" in message
    assert caught.value.retryable is False
    assert TOKEN not in message
    assert len(listener.requests) == 1  # a 4xx is not retried
    assert Ledger(lake, "splunk-hec").sent(_sink(listener.url).destination) == set()


def test_a_rejected_token_is_named_but_never_shown(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [(403, f'{{"text":"Invalid token {TOKEN}","code":4}}'.encode(), {})]
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink(listener.url))
    assert "rejected the token" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(_sink(listener.url))


def test_persistent_5xx_gives_up_as_retryable(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [(503, b"", {})]
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink(listener.url))
    assert caught.value.retryable is True
    assert len(listener.requests) == 4


def test_a_rerun_sends_nothing_new(listener: Listener, lake: LocalLake) -> None:
    export(lake, f.DAY, _sink(listener.url))
    again = export(lake, f.DAY, _sink(listener.url))
    assert (again.sent, again.already_sent) == (0, 5)
    assert len(listener.requests) == 1


def test_after_a_partial_failure_only_the_rest_is_sent(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [OK, (400, b'{"text":"Incorrect index","code":7}', {})]
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink(listener.url, max_events=2))
    assert caught.value.result is not None and caught.value.result.sent == 2
    listener.responses = [OK]
    result = export(lake, f.DAY, _sink(listener.url, max_events=2))
    assert (result.sent, result.already_sent) == (3, 2)
    delivered = [e["fields"]["alert_id"] for r in listener.requests if r is not listener.requests[1]
                 for e in _events(r) if e["fields"]["alert_id"]]  # fmt: skip
    assert len(delivered) == len(set(delivered)) == 5


def test_redirects_are_refused_so_the_token_stays_put(listener: Listener, lake: LocalLake) -> None:
    listener.responses = [(302, b"", {"Location": "http://127.0.0.1:9/collector"})]
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink(listener.url))
    assert "redirect" in str(caught.value)
    assert len(listener.requests) == 1


def test_unreachable_collector_is_retryable(lake: LocalLake) -> None:
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink("http://127.0.0.1:9"))
    assert caught.value.retryable is True
    assert "cannot reach" in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://splunk/x", "file:///etc/passwd", "splunk:8088"])
def test_only_http_collectors_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        _ = _sink(url).destination
