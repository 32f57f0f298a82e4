"""``keytrail run`` and its temporary Prefect API: a generous start-up wait by default, the user's
own setting respected, and a start that never comes ends in one line and exit 2."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO
from tests.ops.helpers import keytrail

SAMPLES = REPO / "data" / "samples" / "trail"
SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def test_a_temporary_api_that_does_not_start_ends_the_run_in_one_line(tmp_path: Path) -> None:
    """A zero wait makes Prefect give up at once, as a busy host makes it give up after 20 s."""
    shown = keytrail("run", "--source", SAMPLES, "--lake", tmp_path / "lake", "--date",
                     "2026-11-14", env={SETTING: "0", "PREFECT_API_URL": ""})  # fmt: skip
    assert shown.returncode == 2, shown.text
    assert "Traceback" not in shown.text and "╭" not in shown.text, shown.text
    errors = [line for line in shown.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, shown.stderr
    assert "temporary API server did not start within 0 s, twice" in errors[0]
    assert "prefect server start" in errors[0] and "PREFECT_API_URL=" in errors[0]
    assert SETTING in errors[0]
    assert not (tmp_path / "lake" / "events").exists()  # nothing of the run started


def test_the_start_up_wait_is_generous_unless_the_user_set_one() -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as WAIT
    from prefect.settings import get_current_settings, temporary_settings

    from flows.runtime import EPHEMERAL_STARTUP_TIMEOUT_SECONDS, patient_ephemeral_api

    assert WAIT.default() < EPHEMERAL_STARTUP_TIMEOUT_SECONDS  # Prefect's own 20 s
    assert "startup_timeout_seconds" not in get_current_settings().server.ephemeral.model_fields_set
    with patient_ephemeral_api():
        assert WAIT.value() == EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    with temporary_settings(updates={WAIT: 45}), patient_ephemeral_api():
        assert WAIT.value() == 45
