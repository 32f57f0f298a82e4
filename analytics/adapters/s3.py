"""S3 trail buckets through boto3: paginated, retried, with errors that say what to fix.

Throttling (SlowDown, 503) and 5xx answers are retried by botocore's adaptive retry mode with
exponential backoff. Permanent errors are turned into messages that name the bucket, the key and,
for access denied, the IAM permission that is missing. An endpoint that cannot be reached and
missing credentials are :class:`EndpointError` (:func:`aws_problem` finds them under any wrapper):
a problem of the setup, not of one object. Credentials come from the usual AWS environment,
profile or instance role and are never logged; endpoint URLs are shown redacted.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from analytics.adapters.sources import ObjectFetchError, ObjectRef, SourceError
from analytics.redact import redact

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_ATTEMPTS = 9
"""Tries per request: the first and 8 retries, unless the AWS configuration names its own
``max_attempts`` (``AWS_MAX_ATTEMPTS`` or the profile; botocore counts the first try too)."""
CONNECT_TIMEOUT_SECONDS = 10
_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """One client per process and endpoint (boto3 clients are thread-safe, sessions are not).

    Without ``endpoint_url`` boto3 reads ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, so
    those are part of the cache key too.
    """
    cache_key = (endpoint_url, region, os.environ.get("AWS_ENDPOINT_URL_S3"),
                 os.environ.get("AWS_ENDPOINT_URL"))  # fmt: skip
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            core = botocore.session.get_session()
            try:
                client = boto3.session.Session(botocore_session=core).client(
                    "s3", endpoint_url=endpoint_url, region_name=region, config=client_config(core)
                )
            except BotoCoreError as exc:  # a missing profile, an endpoint that is no URL
                raise aws_problem(exc, endpoint_url) or SourceError(redact(str(exc))) from None
            _clients[cache_key] = client
        return client


def client_config(core: botocore.session.Session) -> Config:
    """Adaptive retries with backoff (throttling, 5xx, dropped connections), bounded by
    :data:`MAX_ATTEMPTS` unless the user's AWS configuration sets ``max_attempts``."""
    if core.get_config_variable("max_attempts") is None:
        config = Config(retries={"mode": "adaptive", "total_max_attempts": MAX_ATTEMPTS})
    else:
        config = Config(retries={"mode": "adaptive"})
    return config.merge(
        Config(max_pool_connections=32, connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=60)
    )


class EndpointError(SourceError):
    """S3 cannot be used at all: the endpoint does not answer, or there are no credentials.

    Commands stop on it with one line and exit 2: nothing in the lake or the trail is at fault,
    and a rerun after fixing the setup picks up where this one stopped.
    """


def _endpoint_of(url: str | None) -> str:
    """``scheme://host:port`` of a request URL (botocore names the whole request), redacted."""
    if not url:
        return "the default AWS endpoint"
    try:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc}" if parts.netloc else url
    except ValueError:
        shown = url
    return redact(shown)


_ENDPOINT_HINT = (
    "check --endpoint-url (or AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3), the network and any "
    "proxy, and that the service is up"
)
_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance "
    "or task role is available"
)


def aws_problem(error: BaseException, endpoint_url: str | None = None) -> EndpointError | None:
    """The setup problem behind ``error`` (or any exception it was raised from), if there is one:
    an unreachable endpoint or missing/broken credentials, as a one-line :class:`EndpointError`.

    Other errors (access denied, a missing key, throttling that outlasted the retries) are the
    callers' to explain; None for them.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EndpointError):
            return current
        if isinstance(current, (BotoConnectionError, ConnectionClosedError, ReadTimeoutError)):
            kwargs = getattr(current, "kwargs", {})
            where = _endpoint_of(kwargs.get("endpoint_url") or endpoint_url)
            if "proxy_url" in kwargs:
                what = f"cannot reach the proxy {redact(str(kwargs['proxy_url']))}"
            elif isinstance(current, ReadTimeoutError):
                what = f"S3 at {where} did not answer in time"
            elif isinstance(current, ConnectionClosedError):
                what = f"S3 at {where} closed the connection"
            else:
                what = f"cannot reach S3 at {where}"
            return EndpointError(f"{what} (after retries); {_ENDPOINT_HINT}")
        if isinstance(current, NoCredentialsError):
            return EndpointError(f"no AWS credentials found; {_CREDENTIALS_HINT}")
        if isinstance(current, (PartialCredentialsError, CredentialRetrievalError,
                                ProfileNotFound)):  # fmt: skip
            return EndpointError(f"AWS credentials unusable: {redact(str(current))}")
        current = current.__cause__ or current.__context__
    return None


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix)."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise SourceError(f"{uri!r} names no bucket; expected s3://bucket[/prefix]")
    return bucket, prefix


def explain(error: ClientError, bucket: str, key: str | None, action: str) -> str:
    """A one-line message for a permanent S3 error."""
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    if code == "NoSuchBucket":
        return f"bucket {bucket!r} does not exist (while trying {action})"
    if code in ("NoSuchKey", "404") or status == 404:
        return f"{where}: not found (deleted after it was listed?)"
    if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
        permission = {
            "ListObjectsV2": "s3:ListBucket",
            "GetObject": "s3:GetObject (and kms:Decrypt if the bucket uses SSE-KMS)",
            "PutObject": "s3:PutObject (and kms:GenerateDataKey if the lake uses SSE-KMS)",
        }.get(action, action)
        return f"{where}: access denied; the credentials need {permission}"
    message = error.response.get("Error", {}).get("Message", "")
    return f"{where}: {action} failed ({code or status}: {message})"


@dataclass(frozen=True)
class S3Source:
    """A trail bucket, optionally under a prefix."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    page_size: int = 1000

    @classmethod
    def from_uri(cls, uri: str, endpoint_url: str | None = None) -> S3Source:
        bucket, prefix = split_uri(uri)
        return cls(bucket, prefix, endpoint_url)

    @property
    def remote(self) -> bool:
        return True

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _client(self) -> S3Client:
        return s3_client(self.endpoint_url, self.region)

    def _list(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        paginator = self._client().get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": prefix,
            "PaginationConfig": {"PageSize": self.page_size},
        }
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            for page in paginator.paginate(**kwargs):
                yield dict(page)
        except ClientError as exc:
            raise SourceError(explain(exc, self.bucket, prefix or None, "ListObjectsV2")) from None
        except BotoCoreError as exc:
            problem = aws_problem(exc, self.endpoint_url)
            raise problem or SourceError(
                redact(f"s3://{self.bucket}/{prefix}: cannot list ({exc})")
            ) from None

    def _children(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self._list(prefix, delimiter="/"):
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return found

    def day_prefixes(self, days: list[dt.date]) -> list[str] | None:
        """Delivery-day folders under ``<prefix>AWSLogs/``, or None if the layout is unusual.

        Listing only the wanted days keeps a nightly run from listing years of a bucket.
        """
        root = self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"
        top = self._children(root + "AWSLogs/")
        if not top:
            return None
        accounts: list[str] = []
        for entry in top:
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("o-"):
                accounts.extend(self._children(entry))
            else:
                accounts.append(entry)
        prefixes: list[str] = []
        for account in accounts:
            for region in self._children(account + "CloudTrail/"):
                prefixes.extend(region + day.strftime("%Y/%m/%d/") for day in days)
        return prefixes

    def list_objects(self, delivery_days: list[dt.date] | None) -> Iterator[ObjectRef]:
        prefixes = self.day_prefixes(delivery_days) if delivery_days else None
        for prefix in prefixes if prefixes is not None else [self.prefix]:
            yield from self.list_folder(prefix)

    def list_folder(self, folder: str) -> Iterator[ObjectRef]:
        for page in self._list(folder):
            for item in page.get("Contents", []):
                yield ObjectRef(
                    f"s3://{self.bucket}/{item['Key']}",
                    int(item["Size"]),
                    str(item.get("ETag", "")).strip('"'),
                    item.get("LastModified"),
                )

    def folder_key(self, folder: str) -> str:
        return f"s3://{self.bucket}/{folder}"

    def fetch(self, ref: ObjectRef, limit: int | None = None) -> bytes:
        key = ref.key.removeprefix(f"s3://{self.bucket}/")
        try:
            response = self._client().get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:  # past ``limit`` the rest of the body is dropped with the connection, unread
                return body.read(limit) if limit is not None else body.read()
            finally:
                body.close()
        except ClientError as exc:
            raise ObjectFetchError(explain(exc, self.bucket, key, "GetObject")) from None
        except BotoCoreError as exc:
            raise ObjectFetchError(
                redact(f"s3://{self.bucket}/{key}: cannot read ({exc})")
            ) from None
