"""docs/deploy.md and docs/scale-out.md: the policy parses and names what the code calls; every
command-line option they show exists."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from flows.cli_orchestrate import run_command, serve_command
from tests.flows.conftest import REPO

DEPLOY = REPO / "docs" / "deploy.md"
SCALE_OUT = REPO / "docs" / "scale-out.md"

# The AWS calls keytrail makes, by the feature that makes them (analytics/adapters/*.py).
CALLS = {
    "s3:ListBucket", "s3:GetObject",  # the trail (S3Source)
    "kms:Decrypt",  # made by S3 for an SSE-KMS trail
    "s3:PutObject",  # the s3 sink, and an S3 lake (analytics/adapters/s3_lake.py)
    "s3:DeleteObject",  # an S3 lake: files a run replaced, and its lock object
    "kms:GenerateDataKey",  # made by S3 for what keytrail writes to an SSE-KMS lake
    "kms:ListKeys", "kms:ListAliases", "kms:DescribeKey", "kms:GetKeyRotationStatus",
    "kms:ListKeyRotations",  # the KMS inventory (kms_inventory.snapshot)
    "securityhub:BatchImportFindings",  # the securityhub sink
}  # fmt: skip


def _policy() -> dict[str, object]:
    (block,) = re.findall(r"```json\n(.*?)```", DEPLOY.read_text(), re.S)
    return dict(json.loads(block))


def test_the_iam_policy_is_valid_json_and_grants_only_what_keytrail_calls() -> None:
    statements = _policy()["Statement"]
    assert isinstance(statements, list)
    granted: set[str] = set()
    for statement in statements:
        actions = statement["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
        assert statement["Effect"] == "Allow"
        assert "*" not in "".join(granted)  # no wildcard actions
    assert granted == CALLS


@pytest.mark.parametrize("doc", [DEPLOY, SCALE_OUT], ids=lambda p: p.name)
def test_every_option_shown_for_run_and_serve_exists(doc: Path) -> None:
    text = doc.read_text()
    known = set()
    for command in (run_command, serve_command):
        for name in inspect.signature(command).parameters:
            known.add("--" + name.replace("_", "-"))
    known |= {"--json", "--force"}
    shown = set()
    for line in re.findall(r"keytrail (?:run|serve)[^\n`]*(?:\\\n[^\n`]*)*", text):
        shown.update(re.findall(r"(?<![\w-])--[a-z][a-z-]+", line))
    assert shown, f"{doc} shows no keytrail run/serve command"
    assert shown <= known, shown - known
