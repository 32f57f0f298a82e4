"""The public analyst API (analytics.api): what the notebooks and colleagues' scripts rely on."""

from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from pathlib import Path

import boto3
import polars as pl
import pytest

from analytics import api
from analytics.detect import bands
from analytics.adapters.lake import LocalLake
from analytics.config import ConfigError
from analytics.detect.scoring import alerts_path
from tests.hive import read_table

pytestmark = pytest.mark.xdist_group("notebooks")

DAY = dt.date(2026, 11, 14)
UTC = dt.UTC


@pytest.fixture(scope="module")
def lake(scored_lake: LocalLake) -> api.Lake:
    return api.open_lake(scored_lake.root)


@pytest.fixture(scope="module")
def busy_key(lake: api.Lake) -> str:
    summary = api.usage_summary(lake, start=DAY, end=DAY).drop_nulls("key_arn")
    return str(summary.item(0, "key_arn"))


def test_open_lake_says_what_to_run_when_the_folder_is_missing(tmp_path: Path) -> None:
    with pytest.raises(api.LakeError, match="make demo"):
        api.open_lake(tmp_path / "nowhere")


def test_open_lake_refuses_a_folder_that_is_not_a_lake(tmp_path: Path) -> None:
    with pytest.raises(api.LakeError, match="not a keytrail lake"):
        api.open_lake(tmp_path)


def test_open_lake_names_an_s3_bucket_it_cannot_read(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path))
    with pytest.raises(api.LakeError, match="'no-such-lake-bucket' does not exist"):
        api.open_lake("s3://no-such-lake-bucket/lake", endpoint_url=s3_endpoint)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="empty-lake-bucket")
    with pytest.raises(api.LakeError, match=r"s3://empty-lake-bucket/lake is not a keytrail"):
        api.open_lake("s3://empty-lake-bucket/lake", endpoint_url=s3_endpoint)


def test_lake_knows_its_days(lake: api.Lake) -> None:
    assert lake.first_day == dt.date(2026, 11, 1) and lake.last_day == DAY
    assert lake.last_days(2) == [dt.date(2026, 11, 13), DAY]
    assert lake.alert_dates() == [dt.date(2026, 11, 12), dt.date(2026, 11, 13), DAY]


def test_times_without_a_zone_are_refused(lake: api.Lake) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        api.events(lake, start=dt.datetime(2026, 11, 14, 13), end=DAY)
    with pytest.raises(ValueError, match="no time zone"):
        api.events(lake, start="2026-11-14T13:00", end=DAY)


def test_events_of_a_day_are_that_whole_utc_day(lake: api.Lake) -> None:
    frame = api.events(lake, start="2026-11-14", end="2026-11-14", columns=["event_time"])
    stored = pl.read_parquet(lake.local.partition_files(DAY))
    assert frame.height == stored.height
    assert frame.get_column("event_time").is_sorted()


def test_an_instant_end_is_exclusive(lake: api.Lake) -> None:
    frame = api.events(lake, start="2026-11-14T13:00Z", end="2026-11-14T14:00:00+00:00")
    times = frame.get_column("event_time")
    assert frame.height > 0
    assert times.min() >= dt.datetime(2026, 11, 14, 13, tzinfo=UTC)  # type: ignore[operator]
    assert times.max() < dt.datetime(2026, 11, 14, 14, tzinfo=UTC)  # type: ignore[operator]


def test_a_key_can_be_named_by_arn_key_id_or_resource(lake: api.Lake, busy_key: str) -> None:
    key_id = busy_key.rsplit("/", 1)[1]
    by_arn = api.events(lake, key_arn=busy_key, start=DAY, end=DAY)
    assert by_arn.height > 0
    assert by_arn.get_column("key_arn").unique().to_list() == [busy_key]
    for short in (key_id, f"key/{key_id}"):
        assert api.events(lake, key_arn=short, start=DAY, end=DAY).equals(by_arn)


def test_events_select_columns_and_ids(lake: api.Lake, busy_key: str) -> None:
    ids = api.events(lake, key_arn=busy_key, start=DAY, end=DAY, columns=["event_id"])
    wanted = ids.get_column("event_id").head(3).to_list()
    frame = api.events(lake, event_ids=wanted, columns=["event_id", "key_arn"])
    assert frame.columns == ["event_id", "key_arn"]
    assert sorted(frame.get_column("event_id").to_list()) == sorted(wanted)
    with pytest.raises(ValueError, match="unknown event column"):
        api.events(lake, columns=["eventName"])


def test_hourly_usage_has_every_hour_and_counts_every_call(lake: api.Lake, busy_key: str) -> None:
    usage = api.hourly_usage(lake, key_arn=busy_key, start=DAY, end=DAY)
    assert usage.height == 24
    assert usage.get_column("hour_of_day").to_list() == list(range(24))
    calls = api.events(lake, key_arn=busy_key, start=DAY, end=DAY, columns=["event_source"])
    assert (
        usage.get_column("calls").sum()
        == calls.filter(pl.col("event_source") == "kms.amazonaws.com").height
    )


def test_hourly_usage_by_actor_adds_up_to_the_total(lake: api.Lake, busy_key: str) -> None:
    total = api.hourly_usage(lake, key_arn=busy_key, start=DAY, end=DAY)
    split = api.hourly_usage(lake, key_arn=busy_key, start=DAY, end=DAY, by=["actor"])
    actors = split.get_column("actor").n_unique()
    assert split.height == 24 * actors
    assert split.get_column("calls").sum() == total.get_column("calls").sum()
    with pytest.raises(ValueError, match="by may hold"):
        api.hourly_usage(lake, by=["event_name"])


def test_baseline_band_is_the_reports_band(lake: api.Lake, busy_key: str) -> None:
    ours = api.baseline_band(lake, key_arn=busy_key, start=DAY, end=DAY)
    rows = read_table(lake.root / "features" / "hourly", name="features")
    report = bands.build(rows, DAY, [busy_key])
    columns = ["hour_of_day", "calls", "band_low", "band_median", "band_high", "history_days"]
    assert ours.select(columns).equals(report.select(columns))
    assert ours.get_column("hour_start").to_list()[0] == dt.datetime(2026, 11, 14, tzinfo=UTC)


def test_usage_summary_per_actor_adds_up(lake: api.Lake, busy_key: str) -> None:
    per_actor = api.usage_summary(lake, by="actor", key_arn=busy_key, start=DAY, end=DAY)
    usage = api.hourly_usage(lake, key_arn=busy_key, start=DAY, end=DAY)
    assert per_actor.get_column("calls").sum() == usage.get_column("calls").sum()
    assert per_actor.get_column("calls").is_sorted(descending=True)


def test_alerts_hide_suppressed_ones_unless_asked(lake: api.Lake, tmp_path: Path) -> None:
    copy = api.open_lake(shutil.copytree(lake.root, tmp_path / "lake"))
    every = api.alerts(copy, DAY, DAY)
    first = every.row(0, named=True)
    config = api.load_config(
        {
            "suppression": [
                {
                    "id": "test", "owner": "o@example.com", "reason": "test",
                    "expires": dt.date(2100, 1, 1), "detector": first["detector"],
                    "actor": first["actor"],
                }
            ]
        }
    )  # fmt: skip
    suppressed = api.suppress(every, config)
    assert suppressed.filter(pl.col("suppressed_by") == "test").height >= 1
    pl.DataFrame(suppressed).write_parquet(alerts_path(copy.local, DAY))
    hidden = suppressed.filter(pl.col("suppressed_by").is_not_null()).height
    assert api.alerts(copy, DAY, DAY).height == every.height - hidden
    assert api.alerts(copy, DAY, DAY, include_suppressed=True).height == every.height
    assert api.alert(copy, first["alert_id"])["suppressed_by"] == "test"


def test_an_alert_is_found_by_id_or_unique_prefix(lake: api.Lake) -> None:
    some = api.alerts(lake).row(0, named=True)
    assert api.alert(lake, some["alert_id"]) == some
    assert api.alert(lake, some["alert_id"][:8])["alert_id"] == some["alert_id"]
    with pytest.raises(api.AlertNotFound):
        api.alert(lake, some["alert_id"][:7])  # too short to trust
    with pytest.raises(api.AlertNotFound):
        api.alert(lake, "0" * 32)


def test_explain_finds_evidence_a_rule_cited_from_an_earlier_day(lake: api.Lake) -> None:
    pending = api.alerts(lake, DAY, DAY, detector="KMS.PendingDeletionKeyUsed").row(0, named=True)
    explanation = api.explain(lake, pending["alert_id"])
    assert explanation.evidence_missing == ()
    assert explanation.evidence.height == len(set(pending["evidence_event_ids"]))
    assert "same key" in explanation.related.get_column("relation").to_list()
    assert explanation.summary().startswith("**HIGH KMS.PendingDeletionKeyUsed**")


def test_dry_run_reproduces_stored_alerts_and_writes_nothing(lake: api.Lake) -> None:
    path = Path(alerts_path(lake.local, DAY))
    before = path.stat().st_mtime_ns
    again = api.dry_run(lake, [DAY])
    assert path.stat().st_mtime_ns == before
    assert sorted(again.get_column("alert_id").to_list()) == sorted(
        api.alerts(lake, DAY, DAY, include_suppressed=True).get_column("alert_id").to_list()
    )
    with pytest.raises(api.LakeError, match="no events for 2026-12-01"):
        api.dry_run(lake, ["2026-12-01"])


def test_model_scores_say_why_they_are_silent_without_history(lake: api.Lake) -> None:
    early = api.model_scores(lake, "2026-11-05")
    assert early.rows.height == 0 and early.threshold is None
    assert early.silent_reason is not None and "needs 7" in early.silent_reason


def test_model_scores_keep_every_row_and_mark_those_that_fired(lake: api.Lake) -> None:
    scores = api.model_scores(lake, "2026-11-13")
    fired = api.alerts(lake, "2026-11-13", "2026-11-13", detector="KMS.UnusualKeyUsage")
    flagged = scores.rows.filter("flagged")
    assert scores.rows.height > flagged.height > 0
    # One alert per flagged (key, actor); an actor flagged on several keys is one sweep alert.
    keys_per_actor = flagged.group_by("actor").agg(pl.col("key_arn").n_unique().alias("keys"))
    assert keys_per_actor.height == fired.height
    assert set(keys_per_actor.get_column("actor")) == set(fired.get_column("actor"))
    swept = set(keys_per_actor.filter(pl.col("keys") > 1).get_column("actor"))
    assert swept == set(fired.filter(pl.col("key_arn").is_null()).get_column("actor"))
    assert scores.threshold is not None
    assert scores.rows.get_column("anomaly").is_sorted(descending=True)


def test_load_config_merges_overrides_and_refuses_typos(tmp_path: Path) -> None:
    file = tmp_path / "keytrail.toml"
    file.write_text("[model]\nmin_calls = 5\n")
    merged = api.load_config(file, overrides={"model": {"surge_factor": 3.0}})
    assert (merged.model.min_calls, merged.model.surge_factor) == (5, 3.0)
    with pytest.raises(ConfigError, match="surge"):
        api.load_config(overrides={"model": {"surge": 3.0}})


def test_a_proposed_suppression_matches_its_candidate_literally() -> None:
    candidate = {"detector": "KMS.UnusualKeyUsage", "actor": "arn:aws:iam::1:role/job[*]?",
                 "key_arns": ["arn:aws:kms:eu-west-1:1:key/k"]}  # fmt: skip
    text = api.suppression_toml(candidate, id="job", owner="o@example.com", reason="planned",
                                expires=dt.date(2100, 1, 1))  # fmt: skip
    config = api.load_config(tomllib.loads(text))
    (suppression,) = config.suppressions
    assert suppression.key_arn is not None
    assert suppression.matches({**candidate, "key_arn": "arn:aws:kms:eu-west-1:1:key/k"})
    assert not suppression.matches({**candidate, "actor": "arn:aws:iam::1:role/jobX",
                                    "key_arn": "arn:aws:kms:eu-west-1:1:key/k"})  # fmt: skip


def test_candidates_count_alerts_per_detector_and_actor(lake: api.Lake) -> None:
    every = api.alerts(lake)
    candidates = api.suppression_candidates(every, min_alerts=2)
    assert candidates.height >= 1
    for row in candidates.iter_rows(named=True):
        same = every.filter(
            (pl.col("detector") == row["detector"]) & (pl.col("actor") == row["actor"])
        )
        assert row["alerts"] == same.height >= 2
        assert row["keys"] == len(row["key_arns"])


def test_incidents_give_each_incident_once_as_its_latest_days_view(lake: api.Lake) -> None:
    from analytics.detect.scoring import read_incidents

    every = api.incidents(lake)
    assert every.height > 0
    assert every.get_column("incident_id").is_unique().all()
    written = pl.concat(read_incidents(lake.local, d) for d in lake.alert_dates())
    latest = written.group_by("incident_id").agg(pl.col("event_date").max())
    assert dict(every.select("incident_id", "event_date").iter_rows()) == dict(latest.iter_rows())
    for incident in every.iter_rows(named=True):
        members = api.alerts(lake, end=incident["event_date"]).filter(
            pl.col("alert_id").is_in(incident["alert_ids"])
        )
        assert members.height == incident["alert_count"]
    one_day = api.incidents(lake, DAY, DAY)
    assert set(one_day.get_column("event_date").to_list()) <= {DAY}


def test_incidents_select_by_severity_key_and_actor(lake: api.Lake) -> None:
    every = api.incidents(lake)
    first = every.row(0, named=True)
    assert set(api.incidents(lake, severity=first["severity"]).get_column("severity")) == {
        first["severity"]
    }
    key_id = first["key_arns"][0].split(":key/")[-1]
    by_key = api.incidents(lake, key_arn=key_id)
    assert first["incident_id"] in by_key.get_column("incident_id").to_list()
    assert all(
        any(k.endswith(key_id) for k in keys) for keys in by_key.get_column("key_arns").to_list()
    )
    by_actor = api.incidents(lake, actor=first["actors"][0])
    assert first["incident_id"] in by_actor.get_column("incident_id").to_list()
    assert api.incidents(lake, actor="arn:aws:iam::000000000000:role/nobody").is_empty()


def test_alerts_name_their_incident_and_old_alert_files_still_read(
    lake: api.Lake, tmp_path: Path
) -> None:
    alerts = api.alerts(lake, DAY, DAY)
    incidents = api.incidents(lake, DAY, DAY)
    held = {i for ids in incidents.get_column("alert_ids").to_list() for i in ids}
    grouped = alerts.filter(pl.col("incident_id").is_not_null())
    assert grouped.height > 0
    assert set(grouped.get_column("alert_id").to_list()) <= held
    assert set(grouped.get_column("incident_id")) <= set(incidents.get_column("incident_id"))
    copy = api.open_lake(shutil.copytree(lake.root, tmp_path / "lake"))
    path = alerts_path(copy.local, DAY)
    pl.read_parquet(path).drop("incident_id").write_parquet(path)
    old = api.alerts(copy, DAY, DAY)
    assert old.get_column("incident_id").null_count() == old.height == alerts.height
