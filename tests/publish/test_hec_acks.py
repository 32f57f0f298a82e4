"""Splunk HEC with indexer acknowledgement, against a real listener that behaves as Splunk does.

The listener (tests/publish/conftest.py) refuses requests without a channel (400, HEC code 10),
answers accepted requests with an ``ackId``, says an ack is true only on a later poll, and
refuses bodies over Splunk's default 1,000,000-byte ``max_content_length`` with 413. An alert
counts as delivered only when its batch is acknowledged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from analytics.adapters.lake import LocalLake
from analytics.publish.export import HecSink, RetryPolicy, SinkError, export, hec
from analytics.publish.export.idempotency import Ledger
from analytics.publish.export.settings import HecSettings
from flows.sinks import HEC_TOKEN_ENV
from flows.tasks import SinkSpec, make_sink
from tests.publish import fixture as f
from tests.publish import ocsf_schema
from tests.publish.conftest import Listener, serve
from tests.publish.helpers import (
    HEC_TOKEN,
    MEGABYTE_AGENT,
    ROOT_ALERT_ID,
    alert_keys,
    copy_lake,
    stuff_lake,
)
from tests.publish.test_cli_publish import _run

HEC_LIMIT = 1_000_000  # Splunk's default max_content_length
ACTIVE = 5  # unsuppressed alerts of the fixture day
LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
def lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    """The fixture lake with a 1 MiB user agent in the root alert's evidence event."""
    copy = copy_lake(fixture_lake, tmp_path / "lake")
    stuff_lake(copy, f.DAY, f.event_id("d-root"), MEGABYTE_AGENT)
    return copy


@pytest.fixture
def splunk() -> Iterator[Listener]:
    """A collector whose token has indexer acknowledgement enabled."""
    yield from serve(Listener(acks=True, max_body=HEC_LIMIT))


def _sink(url: str, sleeps: list[float] | None = None, **kwargs: Any) -> HecSink:
    record = sleeps if sleeps is not None else []
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01, sleep=record.append)
    return HecSink(url, HEC_TOKEN, policy=policy, **kwargs)


def _events(bodies: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for body in bodies for line in body.splitlines()]


def _alert_ids(bodies: list[bytes]) -> list[str]:
    """The alerts among HEC events (the day's incident is one more event, without alert_id)."""
    return [e["fields"]["alert_id"] for e in _events(bodies) if e["fields"]["alert_id"]]


def _export(lake: LocalLake, url: str, *extra: str) -> Any:
    return _run("export", "--lake", lake.root, "--date", f.DAY.isoformat(), "--sink",
                "splunk-hec", "--hec-url", url, "--json", *extra,
                env={HEC_TOKEN_ENV: HEC_TOKEN})  # fmt: skip


def _event_posts(listener: Listener) -> list[dict[str, Any]]:
    return [r for r in listener.requests if r["path"].startswith(hec.EVENT_PATH)]


def test_every_alert_is_indexed_exactly_once_and_a_rerun_sends_nothing(
    lake: LocalLake, splunk: Listener
) -> None:
    first = _export(lake, splunk.url)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["sent"], summary["unconfirmed"], summary["failed"]) == (ACTIVE, [], [])
    assert summary["delivery"] == "indexer-acknowledged"
    indexed = _alert_ids(splunk.acknowledged)
    assert len(indexed) == len(set(indexed)) == ACTIVE and ROOT_ALERT_ID in indexed
    [incident] = [e for e in _events(splunk.acknowledged) if e["event"]["class_uid"] == 2005]
    assert summary["incidents_sent"] == 1 and incident["fields"]["incident_id"]
    ocsf_schema.assert_valid(e["event"] for e in _events(splunk.acknowledged))
    assert all(len(r["body"]) <= HEC_LIMIT for r in splunk.requests)
    channels = {r["headers"]["X-Splunk-Request-Channel"] for r in splunk.requests}
    assert len(channels) == 1  # one channel for the run's posts and polls
    posts = len(_event_posts(splunk))

    again = _export(lake, splunk.url)
    assert again.exit_code == 0, again.output
    assert (json.loads(again.stdout)["sent"], json.loads(again.stdout)["already_sent"]) == (
        0,
        ACTIVE,
    )
    assert len(_event_posts(splunk)) == posts


def test_acknowledgement_is_polled_until_it_turns_true(lake: LocalLake, splunk: Listener) -> None:
    splunk.ack_after = 3  # true on the third poll only
    sleeps: list[float] = []
    result = export(lake, f.DAY, _sink(splunk.url, sleeps))
    assert (result.sent, result.unconfirmed) == (ACTIVE, [])
    polls = [r for r in splunk.requests if r["path"] == hec.ACK_PATH]
    assert len(polls) == 3 and sleeps == hec.ack_delays(hec.ACK_TIMEOUT_SECONDS)[:2]
    assert orjson.loads(polls[0]["body"]) == {"acks": [0]}
    ledger = Ledger(lake, "splunk-hec").sent(result.destination)
    assert alert_keys(ledger) == set(_alert_ids(splunk.delivered)) and len(ledger) == ACTIVE + 1


def test_a_collector_that_never_acknowledges_delivers_nothing_and_the_rerun_resends(
    lake: LocalLake, splunk: Listener
) -> None:
    splunk.ack_after = 0  # never
    result = _export(lake, splunk.url, "--hec-ack-timeout", "0.01")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert (summary["sent"], len(summary["unconfirmed"])) == (0, ACTIVE + 1)  # and the incident
    assert "not acknowledged by the indexer" in summary["notes"][0]
    assert Ledger(lake, "splunk-hec").read().num_rows == 0
    sent_once = _alert_ids([r["body"] for r in _event_posts(splunk)])
    assert sorted(sent_once) == sorted(set(sent_once))  # never twice within the run

    splunk.ack_after = 1
    rerun = _export(lake, splunk.url)
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["sent"] == ACTIVE


def test_a_token_without_acknowledgement_is_explained_and_nothing_is_recorded(
    lake: LocalLake, listener: Listener
) -> None:
    with pytest.raises(SinkError) as caught:
        export(lake, f.DAY, _sink(listener.url))
    message = str(caught.value)
    assert "gave no ackId" in message and "--hec-acks off" in message
    assert caught.value.retryable is False and HEC_TOKEN not in message
    assert len(_event_posts(listener)) == 1  # it stops after the first batch
    assert Ledger(lake, "splunk-hec").read().num_rows == 0


def test_acks_off_counts_a_200_and_says_delivery_was_not_confirmed(
    lake: LocalLake, listener: Listener
) -> None:
    result = _export(lake, listener.url, "--hec-acks", "off")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sent"] == ACTIVE and summary["delivery"] == "accepted, not confirmed (acks off)"
    assert not [r for r in listener.requests if "/ack" in r["path"]]


def test_batches_stay_under_the_byte_limit_and_413_still_splits(
    lake: LocalLake, splunk: Listener
) -> None:
    result = _export(lake, splunk.url, "--hec-max-batch-bytes", "20000")
    assert result.exit_code == 0, result.output
    posts = _event_posts(splunk)
    assert len(posts) > 1
    assert all(len(r["body"]) <= 20_000 or len(r["body"].splitlines()) == 1 for r in posts)
    assert sorted(_alert_ids(splunk.acknowledged)) == sorted(set(_alert_ids(splunk.delivered)))
    assert len(set(_alert_ids(splunk.acknowledged))) == ACTIVE


def test_413_splits_an_acknowledged_batch_down_to_what_fits(
    lake: LocalLake, splunk: Listener
) -> None:
    largest = max(len(r) for r in _bodies_alone(lake))
    splunk.max_body = largest  # every event fits alone, the whole batch does not
    result = export(lake, f.DAY, _sink(splunk.url))
    assert (result.sent, result.failed, result.unconfirmed) == (ACTIVE, [], [])
    assert any(r["status"] == 413 for r in splunk.requests)
    indexed = _alert_ids(splunk.acknowledged)
    assert len(indexed) == len(set(indexed)) == ACTIVE


def _bodies_alone(lake: LocalLake) -> list[bytes]:
    from analytics.detect.scoring import read_alerts
    from analytics.publish.export.sinks import _day_events, prepare

    items = prepare(read_alerts(lake, f.DAY), _day_events(lake, f.DAY))
    return [hec.body([hec.envelope(item.finding)]) for item in items]


def test_index_and_sourcetype_come_from_keytrail_toml_and_the_command_line(
    lake: LocalLake, splunk: Listener, tmp_path: Path
) -> None:
    config = tmp_path / "keytrail.toml"
    config.write_text('[hec]\nindex = "kms_alerts"\nsourcetype = "ocsf:2004"\n')
    result = _export(lake, splunk.url, "--config", str(config), "--hec-index", "kms_override")
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for body in splunk.delivered for line in body.splitlines()]
    assert {(e["index"], e["sourcetype"]) for e in events} == {("kms_override", "ocsf:2004")}


def test_the_flow_builds_its_hec_sink_from_the_same_settings(lake: LocalLake, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv(HEC_TOKEN_ENV, HEC_TOKEN)
    settings = HecSettings(index="kms", sourcetype="st", acks=False, ack_timeout_seconds=5,
                           verify=False, max_batch_bytes=50_000)  # fmt: skip
    sink = make_sink(SinkSpec.parse("splunk-hec=https://splunk:8088"), lake, f.DAY, hec=settings)
    assert isinstance(sink, HecSink)
    assert (sink.index, sink.sourcetype, sink.acks, sink.ack_timeout, sink.verify,
            sink.max_bytes) == ("kms", "st", False, 5, False, 50_000)  # fmt: skip
    assert HEC_TOKEN not in repr(sink)


# --- TLS ----------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keytrail test collector")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "collector.pem", folder / "collector.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


@pytest.fixture
def tls_splunk(tmp_path: Path) -> Iterator[tuple[Listener, Path]]:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for state in serve(Listener(acks=True), context):
        yield state, cert


def test_tls_with_the_collectors_ca_bundle_delivers(
    lake: LocalLake, tls_splunk: tuple[Listener, Path]
) -> None:
    splunk, cert = tls_splunk
    result = _export(lake, splunk.url, "--hec-ca-bundle", str(cert))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sent"] == ACTIVE


def test_tls_against_an_untrusted_certificate_fails_in_one_line(
    lake: LocalLake, tls_splunk: tuple[Listener, Path]
) -> None:
    splunk, _ = tls_splunk
    result = _run("export", "--lake", lake.root, "--date", f.DAY.isoformat(), "--sink",
                  "splunk-hec", "--hec-url", splunk.url, env={HEC_TOKEN_ENV: HEC_TOKEN})  # fmt: skip
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "TLS certificate not trusted (self-signed certificate)" in line
    assert "--hec-ca-bundle" in " ".join(result.output.split())
    assert "Traceback" not in result.output and HEC_TOKEN not in result.output
    assert _event_posts(splunk) == []


def test_no_verify_reaches_a_self_signed_collector(
    lake: LocalLake, tls_splunk: tuple[Listener, Path]
) -> None:
    splunk, _ = tls_splunk
    result = _export(lake, splunk.url, "--no-hec-verify")
    assert result.exit_code == 0, result.output


def test_the_nightly_flows_hec_parameters_override_keytrail_toml(tmp_path: Path) -> None:
    from flows.nightly import StageFailed, resolve_settings

    config = tmp_path / "keytrail.toml"
    config.write_text('[hec]\nindex = "from_file"\nsourcetype = "file:st"\nacks = true\n')
    trail = tmp_path / "trail"
    trail.mkdir()
    args = (str(trail), str(tmp_path / "lake"), str(config), ["splunk-hec=https://splunk:8088"],
            None, None, None, 1.0, None)  # fmt: skip
    settings = resolve_settings(*args, {"index": "from_flow", "acks": False, "verify": None})
    assert (settings.hec.index, settings.hec.sourcetype, settings.hec.acks) == (
        "from_flow", "file:st", False,
    )  # fmt: skip
    with pytest.raises(StageFailed, match="ack timeout must be positive"):
        resolve_settings(*args, {"ack_timeout_seconds": 0})


def test_a_flow_sink_without_a_url_takes_the_configured_collector(tmp_path: Path) -> None:
    from flows.nightly import StageFailed, resolve_settings

    trail = tmp_path / "trail"
    trail.mkdir()
    with_url = tmp_path / "with-url.toml"
    with_url.write_text('[hec]\nurl = "https://splunk.example:8088"\n')
    without = tmp_path / "without.toml"
    without.write_text('[hec]\nindex = "kms"\n')

    def settings(config: Path) -> Any:
        return resolve_settings(str(trail), str(tmp_path / "lake"), str(config), ["splunk-hec"],
                                None, None, None, 1.0)  # fmt: skip

    assert settings(with_url).hec.url == "https://splunk.example:8088"
    with pytest.raises(StageFailed, match="splunk-hec needs a collector URL"):
        settings(without)
