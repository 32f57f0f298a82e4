"""analytics.redact: what counts as a secret in a URL, and that log records are redacted."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.redact import SECRET_QUERY_NAMES, redact, redact_log_records


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("http://user:pw@127.0.0.1:9000/b", "http://***@127.0.0.1:9000/b"),
        ("https://only-user@minio.local", "https://***@minio.local"),
        ("http://u:p@ss@host:1/x", "http://***@host:1/x"),  # an unescaped "@" in the password
        ('URL: "http://a:b@h/k?list-type=2"', 'URL: "http://***@h/k?list-type=2"'),
        ("https://splunk:8088/services/collector?token=abc", "https://splunk:8088/services/collector?token=***"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=ff&X-Amz-Credential=AK%2F1&x-id=GetObject",
         "https://b.s3.amazonaws.com/k?X-Amz-Signature=***&X-Amz-Credential=***&x-id=GetObject"),
        ("https://h/p?a=1&SIG=zz#frag", "https://h/p?a=1&SIG=***#frag"),
    ],
)  # fmt: skip
def test_credentials_in_urls_are_masked(shown: str, expected: str) -> None:
    assert redact(shown) == expected


@pytest.mark.parametrize(
    "text",
    [
        "s3://trail-bucket/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/01/x.json.gz",
        "quarantined s3://b/k: not gzip (first bytes 7b 22)",
        "mail ops@example.com about key=value pairs and --hec-token-block",
        "http://127.0.0.1:5000/bucket?list-type=2&prefix=AWSLogs",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_log_records_and_their_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redact_log_records()
    redact_log_records()  # idempotent: one wrapper, not two
    logger = logging.getLogger("keytrail.test")
    with caplog.at_level(logging.INFO, logger="keytrail.test"):
        logger.info("pulling from %s", "http://user:hunter2@127.0.0.1:1/lake")
        try:
            raise ValueError("cannot reach https://h/c?token=hunter2")
        except ValueError:
            logger.exception("export failed")
    shown = caplog.text
    assert "hunter2" not in shown
    assert "http://***@127.0.0.1:1/lake" in shown
    assert "ValueError: cannot reach https://h/c?token=***" in shown


_URL_TEXT = st.characters(blacklist_categories=("Z", "C"), blacklist_characters="/?#\"'<>")


@given(user=st.text(_URL_TEXT.filter(lambda c: c != "@")), password=st.text(_URL_TEXT))
def test_no_password_survives_in_the_user_info(user: str, password: str) -> None:
    url = f"http://{user}:{password}@minio.internal:9000/trail?list-type=2"
    assert redact(url) == "http://***@minio.internal:9000/trail?list-type=2"


@given(
    name=st.sampled_from(SECRET_QUERY_NAMES).map(lambda n: n.upper() if len(n) % 2 else n),
    value=st.text(st.characters(blacklist_categories=("Z", "C"), blacklist_characters="&;#\"'<>")),
)
def test_no_secret_query_value_survives(name: str, value: str) -> None:
    url = f"https://splunk.internal:8088/services/collector?channel=1&{name}={value}#top"
    assert (
        redact(url) == f"https://splunk.internal:8088/services/collector?channel=1&{name}=***#top"
    )


def test_property_tests_are_marked_fuzz_and_reproducible_by_default(
    request: pytest.FixtureRequest,
) -> None:
    """``make fuzz`` selects ``-m fuzz``; a plain run draws the same examples every time."""
    assert test_no_password_survives_in_the_user_info.is_hypothesis_test  # type: ignore[attr-defined]
    marked = [item for item in request.session.items if item.get_closest_marker("fuzz")]
    assert any(item.name == "test_no_password_survives_in_the_user_info" for item in marked)
    if os.environ.get("HYPOTHESIS_PROFILE", "default") == "default":
        assert settings.default.derandomize and settings.default.deadline is None
