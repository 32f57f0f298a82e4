"""AWS Security Hub through boto3: import ASFF findings, read the caller's account.

``BatchImportFindings`` takes at most 100 findings per call and answers per finding: the call can
succeed while some findings fail (a malformed resource, a field too long). This adapter returns
both lists so the export can record the accepted ones and report the failed ones by ID.
Throttling and 5xx answers are retried by botocore's standard retry mode with exponential backoff;
what remains is turned into :class:`SecurityHubError` with a message that says what to fix
(Security Hub not enabled, a missing IAM permission) and whether trying again later may help.

boto3 is imported when a client is made, not when this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_securityhub import SecurityHubClient

MAX_BATCH = 100

_TRANSIENT_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "LimitExceededException",
     "InternalException", "ServiceUnavailableException", "RequestTimeout"}
)  # fmt: skip


class SecurityHubError(RuntimeError):
    """A call failed as a whole. ``transient`` says whether a later retry may succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class ImportOutcome:
    accepted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (finding Id, reason)


def _explain(exc: Exception, region: str) -> SecurityHubError:
    response: Any = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code", type(exc).__name__))
    message = str(error.get("Message", "")).strip()
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if response else None
    if code == "InvalidAccessException":
        return SecurityHubError(
            f"Security Hub is not enabled for this account in {region} ({message}); enable it "
            "or export to another region with --region"
        )
    if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        return SecurityHubError(
            f"access denied in {region}: the credentials need securityhub:BatchImportFindings "
            f"({message})"
        )
    transient = code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
    detail = f"{code}: {message}" if message else code
    hint = " (retried; try again later)" if transient else ""
    return SecurityHubError(f"Security Hub in {region} failed ({detail}){hint}", transient)


class SecurityHub:
    """A Security Hub client for one region (and optionally an endpoint such as moto's)."""

    def __init__(self, region: str, endpoint_url: str | None = None, max_attempts: int = 8):
        self.region = region
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self._client: SecurityHubClient | None = None

    def client(self) -> SecurityHubClient:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
            )
            self._client = boto3.session.Session().client(
                "securityhub", region_name=self.region, endpoint_url=self.endpoint_url,
                config=config,
            )  # fmt: skip
        return self._client

    def account_id(self) -> str:
        """The account the credentials belong to (the only one that may import findings)."""
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            sts = boto3.session.Session().client(
                "sts", region_name=self.region, endpoint_url=self.endpoint_url
            )
            return str(sts.get_caller_identity()["Account"])
        except (ClientError, BotoCoreError) as exc:
            raise SecurityHubError(
                f"cannot tell which account the credentials are ({exc})"
            ) from None

    def import_findings(self, findings: Sequence[dict[str, Any]]) -> ImportOutcome:
        """Import at most :data:`MAX_BATCH` findings; per-finding failures are returned."""
        from botocore.exceptions import BotoCoreError, ClientError

        if len(findings) > MAX_BATCH:
            raise ValueError(f"BatchImportFindings takes at most {MAX_BATCH} findings")
        try:
            response = self.client().batch_import_findings(Findings=list(findings))  # type: ignore[arg-type]
        except ClientError as exc:
            raise _explain(exc, self.region) from None
        except BotoCoreError as exc:
            raise SecurityHubError(
                f"Security Hub in {self.region} could not be reached ({exc})", transient=True
            ) from None
        failed = [
            (str(f.get("Id", "")), f"{f.get('ErrorCode', 'Error')}: {f.get('ErrorMessage', '')}")
            for f in response.get("FailedFindings", [])
        ]
        failed_ids = {finding_id for finding_id, _ in failed}
        accepted = [str(f["Id"]) for f in findings if str(f["Id"]) not in failed_ids]
        return ImportOutcome(accepted, failed)

    def get_findings(self, finding_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The findings with these IDs (used to check an export end to end)."""
        filters: Any = {
            "Id": [{"Value": finding_id, "Comparison": "EQUALS"} for finding_id in finding_ids]
        }
        found: list[dict[str, Any]] = []
        paginator = self.client().get_paginator("get_findings")
        for page in paginator.paginate(Filters=filters):
            found.extend(dict(f) for f in page.get("Findings", []))
        return found
