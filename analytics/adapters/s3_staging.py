"""Staged files of an S3 lake: written with SSE-KMS, read through pyarrow.

:func:`s3_filesystem` is the one place an S3 file system is built for the lake (endpoint from
the argument, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``). Writes go through boto3
because pyarrow's S3 file system cannot ask for server-side encryption under a KMS key, and every
object keytrail writes to a lake is encrypted so (:func:`analytics.adapters.s3_lake.sse_kms`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
from botocore.exceptions import ClientError

from analytics.adapters.s3 import explain, s3_client
from analytics.adapters.s3_lake import LakeSyncError, S3LakeUri, sse_kms

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

_FILESYSTEMS: dict[tuple[str | None, ...], pafs.S3FileSystem] = {}


def s3_filesystem(endpoint_url: str | None = None) -> pafs.S3FileSystem:
    """pyarrow's S3 file system for the lake's endpoint (one per process and endpoint)."""
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    key = (endpoint, region)
    if key not in _FILESYSTEMS:
        if endpoint:
            parts = urlsplit(endpoint)
            _FILESYSTEMS[key] = pafs.S3FileSystem(
                endpoint_override=parts.netloc or endpoint,
                scheme=parts.scheme or "https",
                region=region,
            )
        else:
            _FILESYSTEMS[key] = pafs.S3FileSystem(region=region)
    return _FILESYSTEMS[key]


def _bucket_key(uri: str) -> tuple[str, str]:
    parsed = S3LakeUri.parse(uri)
    return parsed.bucket, parsed.prefix.rstrip("/")


def put_bytes(uri: str, data: bytes, endpoint_url: str | None, kms_key_id: str | None) -> None:
    """One object, replaced whole (an S3 PUT is atomic), encrypted under ``kms_key_id``."""
    bucket, key = _bucket_key(uri)
    try:
        s3_client(endpoint_url).put_object(Bucket=bucket, Key=key, Body=data, **sse_kms(kms_key_id))
    except ClientError as exc:
        raise LakeSyncError(explain(exc, bucket, key, "PutObject")) from None


def read_table(uri: str, endpoint_url: str | None) -> pa.Table:
    """A staged Arrow IPC file (:mod:`analytics.ingest.staging`), fetched whole."""
    bucket, key = _bucket_key(uri)
    with s3_filesystem(endpoint_url).open_input_file(f"{bucket}/{key}") as source:
        return pa.ipc.open_file(source).read_all()


def delete(uri: str, endpoint_url: str | None, folder: bool) -> None:
    """Delete one object, or every object under a folder (missing: nothing to do).

    Through boto3 rather than pyarrow, whose deletes leave directory marker objects behind to
    keep the parent "folder" in existence.
    """
    bucket, key = _bucket_key(uri)
    client = s3_client(endpoint_url)
    try:
        if not folder:
            client.delete_object(Bucket=bucket, Key=key)
            return
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{key}/"
        ):
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", [])
            ]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    except ClientError as exc:
        raise LakeSyncError(explain(exc, bucket, key, "DeleteObject")) from None
