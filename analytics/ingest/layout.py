"""Recognise CloudTrail objects by name, wherever they sit in a bucket or folder.

A log file is recognised by its file name alone — ``<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_
<id>.json.gz`` (or ``.json`` in local copies) — so single-account trails, organization trails
(``AWSLogs/o-xxxx/<account>/…``), Control Tower prefixes, extra bucket prefixes and flat folders all
work. Digest and Insight files are told apart by name and folder and are never parsed.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from dataclasses import dataclass

_LOG_FILE = re.compile(
    r"^(?P<account>\d{12})_CloudTrail_(?P<region>[a-z0-9-]+)_"
    r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})T(?P<hhmm>\d{4})Z_[A-Za-z0-9]+\.json(?:\.gz)?$"
)
_DAY_FOLDER = re.compile(
    r"(?:^|/)(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/$"
)
_DIGEST = re.compile(r"(?:^|/)CloudTrail-Digest/|_CloudTrail-Digest_")
_INSIGHT = re.compile(r"(?:^|/)CloudTrail-Insight/|_CloudTrail-Insight_")


class Kind(enum.Enum):
    LOG = "log"
    DIGEST = "digest"
    INSIGHT = "insight"
    OTHER = "other"


@dataclass(frozen=True)
class LogName:
    """What a CloudTrail log file's name says: account, region and delivery date."""

    account: str
    region: str
    delivered: dt.date


def classify(key: str) -> tuple[Kind, LogName | None]:
    """Classify an object key (or relative path) by its name and folders."""
    # Both the Digest and the Insight patterns contain "CloudTrail-": a key without it (every
    # log file of a native trail) skips their searches, a third of a large listing's planning.
    if "CloudTrail-" in key:
        if _DIGEST.search(key):
            return Kind.DIGEST, None
        if _INSIGHT.search(key):
            return Kind.INSIGHT, None
    match = _LOG_FILE.match(key.rsplit("/", 1)[-1])
    if match is None:
        return Kind.OTHER, None
    name = _log_name(*match.group("account", "region", "year", "month", "day"))
    return (Kind.OTHER, None) if name is None else (Kind.LOG, name)


@functools.lru_cache(maxsize=4096)
def _log_name(account: str, region: str, year: str, month: str, day: str) -> LogName | None:
    """One (account, region, delivery day) as named by its log files, made once for the many
    files it has; None for a date that does not exist."""
    try:
        delivered = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return LogName(account, region, delivered)


def day_folder(folder: str) -> LogName | None:
    """What a native delivery folder's path says, ``…/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/``
    (the partition of an S3 trail planned by its folders), or None for any other path."""
    match = _DAY_FOLDER.search(folder)
    if match is None:
        return None
    try:
        delivered = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        return None
    return LogName(match["account"], match["region"], delivered)


@dataclass(frozen=True)
class Selection:
    """Which log files a run wants: by event dates (inclusive) and optionally account/region.

    Events of day D are delivered in D's folder and, for late ones, in D+1's; so a file delivered
    on ``end + 1`` is still wanted.
    """

    start: dt.date | None = None
    end: dt.date | None = None
    accounts: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    def wants(self, name: LogName) -> bool:
        if self.accounts and name.account not in self.accounts:
            return False
        if self.regions and name.region not in self.regions:
            return False
        if self.start is not None and name.delivered < self.start:
            return False
        return not (self.end is not None and name.delivered > self.end + dt.timedelta(days=1))

    def delivery_days(self) -> list[dt.date] | None:
        """The delivery folders to read, or None when the range is open."""
        if self.start is None or self.end is None:
            return None
        days = (self.end - self.start).days + 2
        return [self.start + dt.timedelta(days=i) for i in range(days)]

    def covers(self, day: dt.date) -> bool:
        """Whether an event of ``day`` belongs to this run."""
        if self.start is not None and day < self.start:
            return False
        return not (self.end is not None and day > self.end)
