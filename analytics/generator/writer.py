"""Delivery: records into CloudTrail log files, and the hourly digest files that sign them.

CloudTrail buffers each account-region's events for a few minutes and then delivers one gzip
object named after the *delivery* minute into the folder of the *delivery* date. A late batch
now and then arrives hours after its events with ``addendum.reason = DELIVERY_DELAY``. Every
hour a digest per account-region lists the log files delivered in that hour with their SHA-256,
chained to the previous digest. This module reproduces those mechanics on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from isal import igzip

from analytics.generator.events import Record
from analytics.generator.organisation import trail_name
from analytics.generator.plan import Emitted
from analytics.generator.randomness import alnum
from analytics.generator.rhythm import iso_from_epoch

GZIP_LEVEL = 1  # ISA-L level 1: ~8x on CloudTrail JSON at several hundred MB/s
LATE_SHARE = 0.005
MAX_RECORDS_PER_FILE = 10_000
_WINDOW_SECONDS = (300, 900)
_DELIVERY_LAG_SECONDS = (60, 420)
_LATE_LAG_SECONDS = (2 * 3600, 8 * 3600)


def account_prefix(org_id: str | None, account_id: str) -> str:
    return f"AWSLogs/{org_id}/{account_id}" if org_id else f"AWSLogs/{account_id}"


def _stamp(epoch: int, *, seconds: bool) -> datetime:
    return (
        datetime.fromtimestamp(epoch, tz=UTC)
        if seconds
        else datetime.fromtimestamp(epoch - epoch % 60, tz=UTC)
    )


def log_file_key(
    org_id: str | None, account_id: str, region: str, delivered: int, unique: str
) -> str:
    """``AWSLogs/[o-id/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<ts>_<u>.json.gz``."""
    at = _stamp(delivered, seconds=False)
    return (
        f"{account_prefix(org_id, account_id)}/CloudTrail/{region}/{at:%Y/%m/%d}/"
        f"{account_id}_CloudTrail_{region}_{at:%Y%m%dT%H%MZ}_{unique}.json.gz"
    )


def digest_file_key(
    org_id: str | None, account_id: str, region: str, home_region: str, end: int
) -> str:
    at = _stamp(end, seconds=True)
    return (
        f"{account_prefix(org_id, account_id)}/CloudTrail-Digest/{region}/{at:%Y/%m/%d}/"
        f"{account_id}_CloudTrail-Digest_{region}_{trail_name(org_id)}_{home_region}_"
        f"{at:%Y%m%dT%H%M%SZ}.json.gz"
    )


@dataclass
class PendingFile:
    """A log file decided but not yet written (corruption may still edit its records)."""

    key: str
    account_id: str
    region: str
    delivered: int
    records: list[Record]
    oldest: int
    newest: int
    invalid_utf8_marker: str | None = None  # userAgent placeholder to swap for invalid bytes


@dataclass(frozen=True)
class LogFile:
    """A written log file, as the digest needs it."""

    key: str
    account_id: str
    region: str
    delivered: int
    sha256: str
    oldest: int
    newest: int
    records: int
    size: int


def plan_delivery(
    emitted: list[Emitted], org_id: str | None, rng: random.Random
) -> list[PendingFile]:
    """Group one day's records into delivery windows per account-region (plus late batches)."""
    ordered = sorted(emitted, key=lambda item: item[0])
    streams: dict[tuple[str, str], list[tuple[int, Record]]] = {}
    late: dict[tuple[str, str, int], list[tuple[int, Record]]] = {}
    for epoch, rec, tag in ordered:
        stream = (rec["recipientAccountId"], rec["awsRegion"])
        if tag is None and rng.random() < LATE_SHARE:
            rec["addendum"] = {"reason": "DELIVERY_DELAY"}
            late.setdefault((*stream, epoch // 3600), []).append((epoch, rec))
        else:
            streams.setdefault(stream, []).append((epoch, rec))
    files: list[PendingFile] = []
    for (account, region), items in streams.items():
        index = 0
        while index < len(items):
            first = items[index][0]
            window_end = first - first % 60 + rng.randint(*_WINDOW_SECONDS)
            stop = index
            while (
                stop < len(items)
                and items[stop][0] < window_end
                and stop - index < MAX_RECORDS_PER_FILE
            ):
                stop += 1
            delivered = window_end + rng.randint(*_DELIVERY_LAG_SECONDS)
            files.append(_pending(org_id, account, region, delivered, items[index:stop], rng))
            index = stop
    for (account, region, _hour), items in late.items():
        delivered = items[-1][0] + rng.randint(*_LATE_LAG_SECONDS)
        files.append(_pending(org_id, account, region, delivered, items, rng))
    return files


def _pending(
    org_id: str | None,
    account: str,
    region: str,
    delivered: int,
    items: list[tuple[int, Record]],
    rng: random.Random,
) -> PendingFile:
    key = log_file_key(org_id, account, region, delivered, alnum(rng, 16))
    return PendingFile(
        key=key,
        account_id=account,
        region=region,
        delivered=delivered,
        records=[rec for _, rec in items],
        oldest=items[0][0],
        newest=items[-1][0],
    )


class TreeWriter:
    """Writes objects under the output root, creating folders once, stamping delivery times."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._made: set[Path] = set()
        self.bytes_written = 0

    def put(self, key: str, body: bytes, mtime: int | None = None) -> int:
        path = self.out / key
        folder = path.parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        path.write_bytes(body)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        self.bytes_written += len(body)
        return len(body)


def gzip_bytes(data: bytes, mtime: int) -> bytes:
    return igzip.compress(data, compresslevel=GZIP_LEVEL, mtime=mtime)


def write_log_file(writer: TreeWriter, pending: PendingFile) -> LogFile:
    data = orjson.dumps({"Records": pending.records})
    if pending.invalid_utf8_marker is not None:
        # a userAgent with bytes that are not UTF-8, as some broken clients send them
        data = data.replace(
            pending.invalid_utf8_marker.encode(), b"Mozilla/5.0 (\xff\xfe\xc3\x28 bad)"
        )
    size = writer.put(pending.key, gzip_bytes(data, pending.delivered), pending.delivered)
    return LogFile(
        key=pending.key,
        account_id=pending.account_id,
        region=pending.region,
        delivered=pending.delivered,
        sha256=hashlib.sha256(data).hexdigest(),
        oldest=pending.oldest,
        newest=pending.newest,
        records=len(pending.records),
        size=size,
    )


# --- digests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestChain:
    """One account-region's hourly digest chain over the delivery horizon."""

    out: Path
    org_id: str | None
    bucket: str
    home_region: str
    account_id: str
    region: str
    first_end: int  # end of the first digest period
    last_end: int
    fingerprint: str
    files: tuple[LogFile, ...]  # sorted by delivery time


def _signature(data: bytes) -> str:
    """Stands in for the RSA signature CloudTrail stores in the object's metadata."""
    return hashlib.sha512(b"keytrail-digest-signature" + data).hexdigest() * 4  # 2048-bit


def write_digest_chain(chain: DigestChain) -> tuple[int, int]:
    """Write the chain's digests; returns (files, bytes)."""
    writer = TreeWriter(chain.out)
    files = chain.files
    position = 0
    start = chain.first_end - 3600
    previous: tuple[str, str, str] | None = None  # key, sha256, signature
    count = 0
    end = chain.first_end
    while end <= chain.last_end:
        listed: list[LogFile] = []
        while position < len(files) and files[position].delivered < end:
            listed.append(files[position])
            position += 1
        key = digest_file_key(chain.org_id, chain.account_id, chain.region, chain.home_region, end)
        digest: dict[str, Any] = {
            "awsAccountId": chain.account_id,
            "digestStartTime": iso_from_epoch(start),
            "digestEndTime": iso_from_epoch(end),
            "digestS3Bucket": chain.bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": chain.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": iso_from_epoch(max(f.newest for f in listed)) if listed else None,
            "oldestEventTime": iso_from_epoch(min(f.oldest for f in listed)) if listed else None,
            "previousDigestS3Bucket": chain.bucket if previous else None,
            "previousDigestS3Object": previous[0] if previous else None,
            "previousDigestHashValue": previous[1] if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[2] if previous else None,
            "logFiles": [
                {
                    "s3Bucket": chain.bucket,
                    "s3Object": f.key,
                    "hashValue": f.sha256,
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": iso_from_epoch(f.newest),
                    "oldestEventTime": iso_from_epoch(f.oldest),
                }
                for f in listed
            ],
        }
        data = orjson.dumps(digest)
        delivered = end + 60
        writer.put(key, gzip_bytes(data, delivered), delivered)
        previous = (key, hashlib.sha256(data).hexdigest(), _signature(data))
        count += 1
        start, end = end, end + 3600
    return count, writer.bytes_written
