"""The schedule: flows/prefect.yaml deploys as written, and ``keytrail serve`` wires the same cron."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.flows.conftest import REPO
from tests.flows.helpers import invoke

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_api")]

PREFECT_YAML = REPO / "flows" / "prefect.yaml"


def _deployments() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return {item["name"]: item for item in document["deployments"]}


def test_one_nightly_cron_everywhere() -> None:
    from flows.cli_orchestrate import serve_command
    from flows.nightly import NIGHTLY_CRON

    schedule = _deployments()["nightly"]["schedules"][0]
    assert schedule == {"cron": NIGHTLY_CRON, "timezone": "UTC", "active": True}
    assert inspect.signature(serve_command).parameters["cron"].default == NIGHTLY_CRON


def test_prefect_deploy_registers_the_deployments_with_their_schedule() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="keytrail", type="process"), overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy",
               "--prefect-file", str(PREFECT_YAML.relative_to(REPO)), "--all"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("keytrail-nightly/nightly")
        backfill = client.read_deployment_by_name("keytrail-backfill/backfill")
    cron = _deployments()["nightly"]["schedules"][0]["cron"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in nightly.schedules] == [(cron, "UTC")]
    assert nightly.parameters["lake"] == "/var/lib/keytrail/lake"
    assert backfill.schedules == []


def test_the_deployments_parameters_fit_the_flows() -> None:
    from flows.backfill import backfill
    from flows.nightly import nightly

    items = _deployments()
    nightly.validate_parameters(items["nightly"]["parameters"])
    backfill.validate_parameters(
        {**items["backfill"]["parameters"], "start": "2026-11-01", "end": "2026-11-02"}
    )


def test_serve_schedules_the_nightly_flow_on_the_given_cron(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect import Flow

    served: list[dict[str, Any]] = []

    def serve(self: Flow[Any, Any], **options: Any) -> None:
        served.append({"flow": self.name, **options})

    monkeypatch.setattr(Flow, "serve", serve)
    result = invoke("serve", "--source", "s3://trail/org", "--lake", tmp_path / "lake",
                    "--cron", "15 3 * * *", "--sink", "ocsf-file", "--name", "nightly-test")  # fmt: skip
    assert result.exit_code == 0, result.output
    (options,) = served
    assert options["flow"] == "keytrail-nightly" and options["name"] == "nightly-test"
    (schedule,) = options["schedules"]
    assert (schedule.cron, schedule.timezone) == ("15 3 * * *", "UTC")
    assert options["parameters"] == {
        "source": "s3://trail/org",
        "lake": str((tmp_path / "lake").resolve()),
        "sinks": ["ocsf-file"],
    }


def test_serve_without_a_server_says_how_to_get_one() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = invoke("serve", "--source", "s3://trail", "--lake", "/tmp/lake")
    assert result.exit_code == 2
    assert "PREFECT_API_URL names none" in result.output
    assert "prefect server start" in result.output
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = invoke("serve", "--source", "s3://trail", "--lake", "/tmp/lake")
    assert result.exit_code == 2
    assert "no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api" in result.output
