"""Secrets out of anything shown: the user-info and secret query values of URLs in free text.

Operators put credentials into URLs (``http://user:pass@minio:9000``, a presigned S3 URL, a HEC
URL with ``?token=``), and those URLs come back inside error messages — ours, botocore's,
urllib's. Every message, log record, summary or file that can carry such a URL goes through
:func:`redact` before it leaves the process. It works on text, not on parsed URLs, because the
URL is usually embedded in someone else's sentence, and a malformed URL must be redacted too.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

MASK = "***"

SECRET_QUERY_NAMES = (
    "token", "access_token", "id_token", "refresh_token", "auth", "authorization",
    "password", "passwd", "pwd", "secret", "client_secret", "api_key", "apikey", "key",
    "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature", "x-goog-credential",
)  # fmt: skip
"""Query parameters whose value is a credential (compared case-insensitively)."""

# scheme://user[:password]@ — greedy up to the last "@" before the path, so a password that
# itself holds an unescaped "@" is masked whole.
_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s\"'<>?#]*@")
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(name) for name in SECRET_QUERY_NAMES) + r")=)"
    r"[^&;#\s\"'<>]*"
)


def redact(text: str) -> str:
    """``text`` with URL user-info and secret query values replaced by ``***``."""
    if "@" not in text and "=" not in text:
        return text  # the common case: nothing that could be a credential
    text = _USER_INFO.sub(rf"\1{MASK}@", text)
    return _SECRET_QUERY.sub(rf"\1{MASK}", text)


def redact_url(url: str | None) -> str | None:
    """An endpoint URL as it may be shown (None stays None)."""
    return None if url is None else redact(url)


def _redacting_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's to report, unchanged
            return record
        cleaned = redact(message)
        if record.exc_info and record.exc_info[0] is not None:
            # A traceback carries exception messages (and chained causes) verbatim; when one
            # holds a secret, append it here, redacted, as logging.Formatter would have.
            trace = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if redact(trace) != trace:
                cleaned += "\n" + redact(trace)
                record.exc_info, record.exc_text = None, None
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    make.keytrail_redacts = True  # type: ignore[attr-defined]
    return make


def redact_log_records() -> None:
    """Make every log record of this process redacted at creation, whichever logger or handler
    (Prefect's console and API handlers, botocore's) ends up writing it. Idempotent."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "keytrail_redacts", False):
        logging.setLogRecordFactory(_redacting_factory(current))
