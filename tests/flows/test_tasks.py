"""The flows' building blocks without a Prefect API: partitioning, the S3 fan-out, refusals."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.lock import LakeLock
from analytics.adapters.s3 import S3Source
from analytics.adapters.sources import LocalSource, ObjectFetchError, ObjectRef
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import (
    IngestCommit,
    IngestOptions,
    IngestSummary,
    Partition,
    batched,
    ingest,
    open_staging,
    partitions_of,
)
from flows import tasks
from tests.conftest import upload
from tests.flows import helpers
from tests.flows.conftest import SAMPLES, copy_days
from tests.flows.helpers import invoke

DAY = dt.date(2026, 11, 14)


def _fan_out(source: Any, lake: LocalLake, selection: Selection) -> IngestSummary:
    """The nightly flow's ingest stage with the task functions called directly."""
    plan = tasks.plan_ingest.fn(source, lake, selection)
    options = IngestOptions(selection=selection, workers=1)
    staging = open_staging(lake, plan.run_id)
    summary = IngestSummary(source=source.describe())
    plan.counts.add_to(summary)
    session = IngestCommit(lake, options, summary, staging)
    reads = [
        tasks.read_partition.fn(source, part, options, plan.known_for(part), staging)
        for part in plan.partitions
    ]
    assert all(f.path.startswith(str(lake.root / "_staging")) for r in reads for f in r.files)
    tasks.commit_ingest.fn(session, reads[:3])
    tasks.commit_ingest.fn(session, reads[3:])
    summary = tasks.finish_ingest.fn(session)
    assert not (lake.root / "_staging").exists() or not any((lake.root / "_staging").iterdir())
    return summary


def test_partitions_are_runs_of_one_account_region_and_day_in_key_order() -> None:
    def ref(key: str) -> ObjectRef:
        return ObjectRef(key, 1, "e", None)

    name = "{}_CloudTrail_{}_2026111{}T0000Z_x.json.gz"
    refs = [ref(name.format("111111111111", "eu-west-1", 4)),
            ref(name.format("111111111111", "eu-west-1", 4).replace("_x", "_y")),
            ref(name.format("111111111111", "eu-west-1", 5)),
            ref(name.format("222222222222", "eu-west-1", 4)),
            ref("odd/" + name.format("111111111111", "eu-west-1", 4))]  # fmt: skip
    parts = partitions_of(refs)
    assert [(p.account, p.region, p.delivered.day, len(p.refs)) for p in parts] == [
        ("111111111111", "eu-west-1", 14, 2),
        ("111111111111", "eu-west-1", 15, 1),
        ("222222222222", "eu-west-1", 14, 1),
        ("111111111111", "eu-west-1", 14, 1),  # same partition again: key order is kept
    ]
    assert [r for p in parts for r in p.refs] == refs
    assert all(p.piece == 0 for p in parts)


def test_a_large_partition_is_read_in_pieces_in_key_order() -> None:
    refs = [ObjectRef(f"111111111111_CloudTrail_eu-west-1_20261114T{i:04d}Z_x.json.gz", 10, "e",
                      None) for i in range(7)]  # fmt: skip
    parts = partitions_of(refs, piece_bytes=30)
    assert [len(p.refs) for p in parts] == [3, 3, 1]
    assert [p.name for p in parts] == [f"111111111111/eu-west-1/2026-11-14#{i}" for i in (1, 2, 3)]
    assert [r for p in parts for r in p.refs] == refs


def test_small_neighbouring_partitions_are_read_as_one_task_in_key_order() -> None:
    def folder(account: str, day: int, objects: int, size: int) -> list[ObjectRef]:
        name = "{}_CloudTrail_eu-west-1_202611{:02d}T{:04d}Z_x.json.gz"
        return [ObjectRef(name.format(account, day, i), size, "e", None) for i in range(objects)]

    refs = [*folder("111111111111", 14, 3, 10), *folder("111111111111", 15, 2, 10),
            *folder("222222222222", 14, 9, 10), *folder("222222222222", 15, 1, 10),
            *folder("333333333333", 14, 1, 10)]  # fmt: skip
    parts = partitions_of(refs, piece_bytes=60)  # the third folder (90 bytes) comes in pieces
    listed_by_task = Partition("444444444444", "eu-west-1", DAY, prefix="AWSLogs/444444444444/x/")
    tasks_ = batched([*parts, listed_by_task], batch_bytes=60)
    assert [(len(p.refs), p.folders, p.piece) for p in tasks_] == [
        (5, 2, 0),  # 30 + 20 bytes: joined
        (6, 1, 1),  # pieces stay as they are
        (3, 1, 2),
        (2, 2, 0),  # the last two small folders
        (0, 1, 0),  # an S3 folder its task lists: never joined
    ]
    assert [p.index for p in tasks_] == list(range(5))
    assert [r for p in tasks_ for r in p.refs] == refs  # key order, every object once
    assert tasks_[0].name == "111111111111/eu-west-1/2026-11-14 and 1 more"
    assert len({p.stem for p in tasks_}) == 5


def test_a_local_tree_is_planned_by_its_delivery_folders() -> None:
    plan = tasks.plan_ingest.fn(LocalSource(SAMPLES), LocalLake(Path("/nonexistent")),
                                Selection(DAY, DAY))  # fmt: skip
    names = [p.name for p in plan.partitions]
    assert names == sorted(names)
    assert {p.delivered for p in plan.partitions} == {DAY, DAY + dt.timedelta(days=1)}
    assert plan.counts.objects_seen == sum(len(p.refs) for p in plan.partitions)
    assert plan.counts.digests_skipped > 0


@pytest.mark.usefixtures("decoder")
def test_the_s3_fan_out_writes_what_plain_ingest_writes(
    s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    tree = copy_days(["2026-11-14", "2026-11-15"], tmp_path / "trail")
    upload(s3, bucket, {str(p.relative_to(tree)): p.read_bytes()
                        for p in tree.rglob("*.json.gz")}, prefix="org/")  # fmt: skip
    source = S3Source.from_uri(f"s3://{bucket}/org", endpoint_url=s3_endpoint)
    selection = Selection(DAY, DAY)
    fanned, plain = LocalLake(tmp_path / "fanned"), LocalLake(tmp_path / "plain")
    plan = tasks.plan_ingest.fn(source, fanned, selection)
    assert plan.partitions and all(p.prefix for p in plan.partitions)  # listed by each task
    summary = _fan_out(source, fanned, selection)
    expected = ingest(source, plain, IngestOptions(selection=selection, workers=1))
    helpers.assert_same_lake(fanned.root, plain.root, [])
    for field in ("objects_seen", "objects_ingested", "events_written", "events_outside_range",
                  "duplicate_events_dropped", "dates_written"):  # fmt: skip
        assert getattr(summary, field) == getattr(expected, field), field
    again = _fan_out(source, fanned, selection)
    assert again.objects_skipped == again.objects_seen == expected.objects_seen
    assert again.events_written == 0


class _Unreadable(LocalSource):
    def fetch(self, ref: ObjectRef, limit: int | None = None) -> bytes:
        raise ObjectFetchError(f"{ref.key}: access denied")


def test_an_object_that_cannot_be_fetched_fails_its_partition(tmp_path: Path) -> None:
    tree = copy_days(["2026-11-14"], tmp_path / "trail")
    source = _Unreadable(tree)
    selection = Selection(DAY, DAY)
    plan = tasks.plan_ingest.fn(source, LocalLake(tmp_path / "lake"), selection)
    part = plan.partitions[0]
    with pytest.raises(tasks.PartitionFailed, match=rf"of {part.name} could not be read"):
        tasks.read_partition.fn(source, part, IngestOptions(selection=selection), {},
                                open_staging(LocalLake(tmp_path / "lake"), "run"))  # fmt: skip


def test_sink_specs() -> None:
    assert tasks.SinkSpec.parse("ocsf-file") == tasks.SinkSpec("ocsf-file")
    assert str(tasks.SinkSpec.parse("s3=s3://b/p")) == "s3=s3://b/p"
    assert tasks.SinkSpec.parse("splunk-hec") == tasks.SinkSpec("splunk-hec")  # [hec] url
    for bad, why in (("kafka", "unknown sink"), ("s3=b/p", "s3=s3://")):
        with pytest.raises(ValueError, match=why):
            tasks.SinkSpec.parse(bad)


def test_untrusted_text_cannot_become_markdown_or_html() -> None:
    from analytics.publish.reports.run_summary import md

    text = md("<img src=x onerror=alert(1)> [click](http://evil) | `x` \x1b[31m")
    assert "<" not in text and "](" not in text and "\\|" in text and "\x1b" not in text


def test_the_demo_scores_the_last_day_of_the_sample(tmp_path: Path) -> None:
    from flows.cli_orchestrate import sample_days

    assert sample_days(SAMPLES) == (dt.date(2026, 11, 1), dt.date(2026, 11, 14))
    tree = copy_days(["2026-11-13", "2026-11-14", "2026-11-15"], tmp_path / "trail")
    assert sample_days(tree) == (dt.date(2026, 11, 13), dt.date(2026, 11, 14))
    (tmp_path / "labels.json").write_text(json.dumps({"start": "2026-11-01", "days": 3}))
    assert sample_days(tmp_path) == (dt.date(2026, 11, 1), dt.date(2026, 11, 3))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-11-14", "--start", "2026-11-01", "--end", "2026-11-02"], "not both"),
        (["--start", "2026-11-01"], "go together"),
        (["--start", "2026-11-03", "--end", "2026-11-02"], "after --end"),
        (["--sink", "kafka"], "unknown sink"),
        (["--dask-address", "tcp://h:8786"], "needs --task-runner dask"),
    ],
)
def test_run_refuses_bad_usage_before_starting_anything(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = invoke("run", "--source", tmp_path, "--lake", tmp_path / "lake", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_run_refuses_a_locked_lake_at_once(tmp_path: Path) -> None:
    with LakeLock(tmp_path / "lake", "keytrail backfill 2026-11-01..2026-11-28"):
        result = invoke("run", "--source", tmp_path, "--lake", tmp_path / "lake")
    assert result.exit_code == 2
    assert "is locked by 'keytrail backfill 2026-11-01..2026-11-28' (pid" in result.output


@pytest.mark.parametrize("command", ["run", "serve"])
def test_help_renders_with_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"keytrail {command} --source" in result.output
