"""The lake's filesystem (analytics/adapters/lake_fs.py): which endpoint it talks to, and that a
Parquet file in S3 is read by its footer and the chunks of the columns asked for, not whole."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pyarrow as pa
import pytest

from analytics.adapters.lake_fs import endpoint_for, open_lake_fs
from tests.lake.s3_counting_proxy import CountingProxy


def test_an_explicit_endpoint_wins_over_the_s3_variable_which_wins_over_the_general_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://general:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2")
    assert endpoint_for("http://explicit:3") == "http://explicit:3"
    assert endpoint_for(None) == "http://s3-only:2"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert endpoint_for(None) == "http://general:1"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert endpoint_for(None) is None


def test_a_parquet_file_in_s3_is_read_by_footer_and_column(s3_endpoint: str, s3: Any) -> None:
    bucket = f"fs-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    rows = 20_000
    table = pa.table({
        "small": pa.array([i % 7 for i in range(rows)], pa.int8()),
        "large": pa.array([os.urandom(24).hex() for _ in range(rows)]),  # incompressible
    })  # fmt: skip
    with CountingProxy(s3_endpoint) as proxy:
        store = open_lake_fs(f"s3://{bucket}/lake", endpoint_url=proxy.url)
        store.write_parquet("t/part.parquet", table)
        file = store.file("t/part.parquet")
        assert file is not None and file.size > 500_000
        head = s3.head_object(Bucket=bucket, Key="lake/t/part.parquet")
        assert head["ServerSideEncryption"] == "aws:kms"

        proxy.reset()
        assert store.read_schema(file).names == ["small", "large"]
        footer = proxy.received["GET"]
        assert 0 < footer < 2_000  # the 8-byte tail, then exactly the footer

        proxy.reset()
        small = store.read_table([file], ["small"])
        assert small.column("small").to_pylist() == table.column("small").to_pylist()
        assert 0 < proxy.received["GET"] < file.size / 20  # not the large column

        proxy.reset()
        assert store.read_table([file]).equals(table)
        assert proxy.received["GET"] >= file.size - footer - 8  # the footer was kept
