"""Things an ingester meets in real buckets: broken objects, broken records, hostile strings.

Broken objects (``--corrupt``) sit in the normal folders under normal CloudTrail names, so a
reader cannot skip them by name; each is listed in the labels with its defect and whether a
correct ingester should refuse it. Broken records live inside otherwise good files. Hostile
strings (markup, SQL, newlines, a 10 kB user agent) are valid records and are always written:
every consumer that renders or queries these fields must cope with them.
"""

from __future__ import annotations

import random
from typing import Any

from isal import isal_zlib

from analytics.generator.events import KMS, Record
from analytics.generator.randomness import alnum
from analytics.generator.writer import LogFile, PendingFile, TreeWriter, gzip_bytes, log_file_key

INVALID_UTF8_MARKER = "keytrail-invalid-utf8-marker"
BOMB_BYTES = 310 * 1024 * 1024
_BOMB_CHUNK = b" " * (1 << 20)

HOSTILE_AGENTS = {
    "html_script": "<script>alert(1)</script>",
    "newline_and_quotes": "aws-cli/2.17.20 \"quoted\" 'single'\r\nX-Injected-Header: keytrail",
    "oversized_10kb": "Mozilla/5.0 (compatible; " + "A" * 10_240 + ")",
}
HOSTILE_CONTEXT_VALUE = "'; DROP TABLE events; --"


def _candidates(files: list[PendingFile], protected: set[str]) -> list[tuple[PendingFile, Record]]:
    """Direct KMS calls not belonging to a scenario, in a stable order."""
    out = []
    for pending in files:
        for rec in pending.records:
            if (
                rec.get("eventSource") == KMS
                and rec.get("tlsDetails") is not None
                and rec.get("eventID") not in protected
                and "errorCode" not in rec
            ):
                out.append((pending, rec))
    return out


def inject_hostile_strings(
    files: list[PendingFile], protected: set[str], rng: random.Random
) -> list[dict[str, Any]]:
    """Put hostile user agents and a SQL-looking context value into a few benign records."""
    candidates = _candidates(files, protected)
    if len(candidates) < len(HOSTILE_AGENTS) + 1:
        return []
    picks = rng.sample(candidates, len(candidates))
    found: list[dict[str, Any]] = []
    for (pending, rec), (kind, agent) in zip(picks, HOSTILE_AGENTS.items(), strict=False):
        rec["userAgent"] = agent
        protected.add(rec["eventID"])
        found.append(
            {"key": pending.key, "event_id": rec["eventID"], "field": "userAgent", "kind": kind}
        )
    for pending, rec in picks[len(HOSTILE_AGENTS) :]:
        params = rec.get("requestParameters")
        if isinstance(params, dict) and isinstance(params.get("encryptionContext"), dict):
            context = dict(params["encryptionContext"])
            context[next(iter(context))] = HOSTILE_CONTEXT_VALUE
            rec["requestParameters"] = {**params, "encryptionContext": context}
            protected.add(rec["eventID"])
            found.append(
                {
                    "key": pending.key,
                    "event_id": rec["eventID"],
                    "field": "requestParameters.encryptionContext",
                    "kind": "sql_injection",
                }
            )
            break
    return found


def corrupt_records(
    files: list[PendingFile], protected: set[str], rng: random.Random
) -> list[dict[str, Any]]:
    """Records without eventTime or eventID, and one userAgent that is not valid UTF-8."""
    candidates = _candidates(files, protected)
    if len(candidates) < 5:
        return []
    bad: list[dict[str, Any]] = []
    picks = rng.sample(candidates, 5)
    for pending, rec in picks[:2]:
        del rec["eventTime"]
        bad.append({"key": pending.key, "event_id": rec["eventID"], "defect": "missing_eventTime"})
    for pending, rec in picks[2:4]:
        del rec["eventID"]
        bad.append({"key": pending.key, "event_id": None, "defect": "missing_eventID"})
    pending, rec = picks[4]
    rec["userAgent"] = INVALID_UTF8_MARKER
    pending.invalid_utf8_marker = INVALID_UTF8_MARKER
    bad.append({"key": pending.key, "event_id": rec["eventID"], "defect": "invalid_utf8"})
    return bad


def _write_bomb(writer: TreeWriter, key: str) -> None:
    """> 300 MB of whitespace-padded JSON compressed to a few hundred kB, streamed."""
    path = writer.out / key
    path.parent.mkdir(parents=True, exist_ok=True)
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    with path.open("wb") as sink:
        sink.write(compressor.compress(b'{"Records":['))
        for _ in range(BOMB_BYTES // len(_BOMB_CHUNK)):
            sink.write(compressor.compress(_BOMB_CHUNK))
        sink.write(compressor.compress(b"]}"))
        sink.write(compressor.flush())
    writer.bytes_written += path.stat().st_size


def write_bad_objects(
    writer: TreeWriter, org_id: str | None, hosts: list[LogFile], rng: random.Random
) -> list[dict[str, Any]]:
    """Bad objects beside good ones (named like log files); returns their label entries."""
    if not hosts:
        return []
    hosts = sorted(hosts, key=lambda f: f.key)
    defects = (
        "truncated_gzip",
        "not_gzip",
        "invalid_json",
        "no_records_key",
        "zero_bytes",
        "gzip_bomb",
        "duplicate_delivery",
    )
    out: list[dict[str, Any]] = []
    for defect in defects:
        host = hosts[rng.randrange(len(hosts))]
        delivered = host.delivered + rng.randint(60, 240)
        key = log_file_key(org_id, host.account_id, host.region, delivered, alnum(rng, 16))
        good = (writer.out / host.key).read_bytes()
        if defect == "truncated_gzip":
            writer.put(key, good[: len(good) // 2], delivered)
        elif defect == "not_gzip":
            writer.put(key, b"PK\x03\x04" + rng.randbytes(2044), delivered)
        elif defect == "invalid_json":
            body = b'{"Records":[{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole",'
            writer.put(key, gzip_bytes(body, delivered), delivered)
        elif defect == "no_records_key":
            writer.put(key, gzip_bytes(b'{"foo": []}', delivered), delivered)
        elif defect == "zero_bytes":
            writer.put(key, b"", delivered)
        elif defect == "gzip_bomb":
            _write_bomb(writer, key)
        else:
            writer.put(key, good, delivered)
        entry: dict[str, Any] = {
            "key": key,
            "defect": defect,
            "quarantine": defect != "duplicate_delivery",
        }
        if defect in ("truncated_gzip", "duplicate_delivery"):
            entry["copy_of"] = host.key
        out.append(entry)
    return out
