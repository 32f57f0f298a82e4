"""The nightly and backfill flows on an S3 lake: the same results as on a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import polars as pl
import pytest

from analytics.lake import schema as s
from tests.flows import helpers
from tests.flows.conftest import LAST_DAY, copy_days
from tests.flows.helpers import invoke

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_api")]


def test_the_nightly_flow_on_an_s3_lake_matches_a_local_run(
    s3_endpoint: str, tmp_path: Path, short_window: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    s3 = boto3.client("s3", region_name="us-east-1")
    kms = boto3.client("kms", endpoint_url=s3_endpoint, region_name="us-east-1")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket="flow-lake")
    tree = copy_days(["2026-11-12", "2026-11-13", "2026-11-14", "2026-11-15"], tmp_path / "trail")
    common = ["--source", tree, "--date", LAST_DAY, "--ingest-from", "2026-11-12",
              "--config", short_window, "--json"]  # fmt: skip

    remote = invoke("run", "--lake", "s3://flow-lake/keytrail", "--lake-kms-key", key, *common)
    assert remote.exit_code == 0, remote.output
    result = json.loads(remote.stdout)
    assert result["lake"] == "s3://flow-lake/keytrail"
    assert result["days"][0]["report_html"] == (
        f"s3://flow-lake/keytrail/reports/{LAST_DAY}/report.html"
    )
    local = tmp_path / "local"
    assert invoke("run", "--lake", local, *common).exit_code == 0

    copied = helpers.download_lake(s3, "flow-lake", "keytrail/", tmp_path / "copied")
    helpers.assert_same_lake(copied, local, [LAST_DAY])
    assert helpers.alerts(copied, LAST_DAY).height > 0
    assert not (copied / "_state" / "lock.json").exists()
    assert (
        s3.head_object(Bucket="flow-lake", Key="keytrail/_state/objects.parquet")["SSEKMSKeyId"]
        == key
    )

    assert not (tmp_path / "cache").exists()  # worked on in place: nothing of the lake kept here

    # A second run finds the day complete and changes nothing in the bucket.
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket="flow-lake")["Contents"]}
    again = invoke("run", "--lake", "s3://flow-lake/keytrail", "--lake-kms-key", key, *common)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["days"][0]["skipped"] is True
    after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket="flow-lake")["Contents"]}
    changed = {k for k in after if before.get(k) != after[k]}
    assert all(k.startswith("keytrail/_state/") for k in changed), changed
    events = pl.read_parquet(sorted((copied / "events").rglob("*.parquet")))
    assert events.get_column(s.EVENT_ID).n_unique() == events.height
