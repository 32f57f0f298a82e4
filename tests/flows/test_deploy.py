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

from tests.docs.shell_blocks import explain, run_blocks
from tests.flows.conftest import REPO
from tests.flows.helpers import invoke

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_api")]

PREFECT_YAML = REPO / "flows" / "prefect.yaml"
DEPLOY_DOC = REPO / "docs" / "deploy.md"


def _deployments() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return {item["name"]: item for item in document["deployments"]}


def test_one_nightly_cron_everywhere() -> None:
    from flows.cli_orchestrate import serve_command
    from flows.nightly import NIGHTLY_CRON

    schedule = _deployments()["nightly"]["schedules"][0]
    assert schedule == {"cron": NIGHTLY_CRON, "timezone": "UTC", "active": True}
    assert inspect.signature(serve_command).parameters["cron"].default == NIGHTLY_CRON


def _deploy_as_documented(api_url: str) -> subprocess.CompletedProcess[str]:
    """docs/deploy.md's ``sh deploy`` block, run as written from the repository root against
    the test API (``prefect`` is the one installed beside this Python)."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(REPO / ".prefect"))}  # fmt: skip
    return run_blocks(DEPLOY_DOC, ("deploy",), cwd=REPO, env=env, timeout=300)


def test_the_documented_deploy_commands_register_both_deployments_as_given() -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments.steps.core import run_step
    from prefect.settings import PREFECT_API_URL
    from prefect.utilities.asyncutils import run_coro_as_sync

    done = _deploy_as_documented(str(PREFECT_API_URL.value()))
    assert done.returncode == 0, explain(done)
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("keytrail-nightly/nightly")
        backfill = client.read_deployment_by_name("keytrail-backfill/backfill")
    cron = _deployments()["nightly"]["schedules"][0]["cron"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in nightly.schedules] == [(cron, "UTC")]
    assert backfill.schedules == []
    given = {"source": "s3://org-cloudtrail/prefix", "lake": "/var/lib/keytrail/lake"}
    for deployment in (nightly, backfill):
        assert deployment.parameters == {**given, "sinks": ["ocsf-file"]}
        assert deployment.work_pool_name == "keytrail"
        (step,) = deployment.pull_steps or []
        assert step == {
            "prefect.deployments.steps.set_working_directory": {"directory": "{{ $KEYTRAIL_HOME }}"}
        }
    # The pull step, as a worker runs it, lands in the checkout KEYTRAIL_HOME names.
    here = Path.cwd()
    try:
        os.environ["KEYTRAIL_HOME"] = str(REPO / "flows")
        output = run_coro_as_sync(run_step(step))
    finally:
        os.environ.pop("KEYTRAIL_HOME", None)
        os.chdir(here)
    assert output == {"directory": str(REPO / "flows")}


def test_prefect_yaml_names_no_fixed_path_and_no_example_trail_or_lake() -> None:
    text = PREFECT_YAML.read_text()
    assert "/opt/" not in text.split("pull:", 1)[1]
    for item in _deployments().values():
        assert "source" not in item["parameters"] and "lake" not in item["parameters"]


def test_the_deployments_parameters_fit_the_flows() -> None:
    from flows.backfill import backfill
    from flows.nightly import nightly

    items = _deployments()
    given = {"source": "s3://org-cloudtrail/prefix", "lake": "/var/lib/keytrail/lake"}
    nightly.validate_parameters({**items["nightly"]["parameters"], **given})
    backfill.validate_parameters(
        {**items["backfill"]["parameters"], **given, "start": "2026-11-01", "end": "2026-11-02"}
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
