"""The compiled scanner against the reference decoder: equal tables, or the object sent back.

For every document, either the scanner declines it (and names why) and the reference decoder
reads it as before, or the scanner's table, bad records and notes equal the reference's exactly.
Never a third outcome. Generated CloudTrail documents, mutations of real ones and one document
per kind of oddity check it.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.ingest import cloudtrail as ct
from analytics.ingest import scan
from analytics.ingest.decompress import RejectedObject, to_json_bytes
from analytics.ingest.scan import _kernel as kernel
from analytics.ingest.scan.cache import CACHE_ENV, configure_cache_dir
from tests import trail
from tests.flows.helpers import assert_same_lake
from tests.fuzz_profiles import fuzz_settings
from tests.ingest.helpers import ingest_json

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples" / "trail"
DATASETS = REPO.parent / "shared" / "datasets"


def _reference(doc: bytes) -> tuple[pa.Table, ct.DecodedObject] | str:
    try:
        objects = [ct.decode_reference(doc, "obj")]
    except RejectedObject as exc:
        return f"rejected: {exc}"
    table, refused = ct.normalise_each(objects)
    if refused:
        return f"rejected: {refused['obj']}"
    return table, objects[0]


def outcome(doc: bytes) -> str:
    """``equal`` (scanned, and equal to the reference), or ``fallback: <reason>``; fails the
    test on anything else."""
    scanned = scan.scan_document(doc)
    reference = _reference(doc)
    if isinstance(scanned, str):
        return f"fallback: {scanned}"
    assert not isinstance(reference, str), (
        f"scanner took a document the reference refuses: {reference}"
    )
    objects = [ct.DecodedObject("obj", doc, [], scanned=scanned)]
    table, refused = ct.normalise_each(objects)
    assert not refused
    expected, decoded = reference
    assert table.schema == expected.schema
    for name in expected.column_names:
        assert table[name].to_pylist() == expected[name].to_pylist(), name
    assert table.equals(expected)
    assert [(b.index, b.reason, b.raw) for b in objects[0].bad_records] == [
        (b.index, b.reason, b.raw) for b in decoded.bad_records
    ]
    assert objects[0].notes == decoded.notes
    return "equal"


def _doc(records: list[dict[str, Any]], **dumps: Any) -> bytes:
    return json.dumps({"Records": records}, **dumps).encode()


def _sample_documents(limit: int) -> list[bytes]:
    docs = []
    for path in sorted(SAMPLES.rglob("*_CloudTrail_*.json.gz"))[:limit]:
        docs.append(to_json_bytes(path.read_bytes()))
    return docs


def test_the_scanner_takes_every_sample_object_and_equals_the_reference() -> None:
    docs = _sample_documents(120)
    assert len(docs) == 120
    assert [outcome(doc) for doc in docs] == ["equal"] * len(docs)


def test_strings_with_escapes_are_unescaped_as_the_reference_does() -> None:
    odd = 'q\\"b\\\\s\\/ \\b\\f\\n\\r\\t \\u00e9\\u20ac \\ud83d\\ude00 \\u0000 é€😀'
    record = trail.kms_record(seed="esc", request={"keyId": "@ODD@", "encryptionContext": {}})
    record["userAgent"] = "@ODD@"
    record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = "@ODD@"
    record["eventID"] = "@ODD@"
    doc = _doc([record], ensure_ascii=False).replace(b"@ODD@", odd.encode())
    assert outcome(doc) == "equal"
    table = ct.parse_document(doc, "obj").events
    assert table["user_agent"][0].as_py() == 'q"b\\s/ \b\f\n\r\t é€ 😀 \x00 é€😀'


def test_kms_values_come_from_kms_events_only() -> None:
    request = {"keyId": "alias/app", "encryptionContext": {"k": "v"}}
    kms = trail.kms_record(seed="kms", request=request)
    other = trail.kms_record(seed="s3", request=request, eventSource="s3.amazonaws.com")
    odd_key = trail.kms_record(seed="num", request={"keyId": 5, "encryptionContext": {"k": 1}})
    not_object = trail.kms_record(seed="str", request={"keyId": "k", "encryptionContext": "x"})
    escaped = trail.kms_record(seed="esc", request=request, eventSource="@KMS@",
                               resources=[{"ARN": "@ARN@"}])  # fmt: skip
    doc = _doc([kms, other, odd_key, not_object, escaped])
    doc = doc.replace(b"@KMS@", b"km\\u0073.amazonaws.com")
    doc = doc.replace(b"@ARN@", trail.KEY_ARN.replace(":key/", "\\u003akey\\/").encode())
    assert outcome(doc) == "equal"
    scanned = scan.scan_document(doc)
    assert not isinstance(scanned, str)
    columns = scan.to_columns([scanned])
    assert columns["requestKeyId"].to_pylist() == ["alias/app", None, None, "k", "alias/app"]
    assert columns["encryptionContext"].to_pylist() == ['{"k": "v"}', None, None, None,
                                                        '{"k": "v"}']  # fmt: skip
    assert columns["resourceKeyArn"].to_pylist()[-1] == trail.KEY_ARN


def test_records_the_reference_quarantines_are_quarantined_alike() -> None:
    no_id = trail.kms_record(seed="a")
    del no_id["eventID"]
    ancient = trail.kms_record(seed="b", when="2001-01-01T00:00:00Z")
    unparsable = trail.kms_record(seed="c", when="yesterday")
    doc = _doc([no_id, trail.kms_record(seed="d"), ancient, unparsable])
    assert outcome(doc) == "equal"
    parsed = ct.parse_document(doc, "obj")
    assert [b.index for b in parsed.bad_records] == [0, 2, 3]
    assert parsed.events.num_rows == 1


@pytest.mark.parametrize("special", ['\\"', "\\\\", "\\n", "\\u00e9", "é", "😀", "\x01"])
def test_a_string_is_read_alike_wherever_its_special_byte_falls(special: str) -> None:
    # The scanner reads strings eight bytes at a time from any position and jumps to the first
    # quote, backslash, control or non-ASCII byte: every position of such a byte in those eight
    # bytes, and every alignment of the string's start, must read as the reference does (or, for
    # a raw control character, which is not JSON, go to the reference decoder).
    records: list[dict[str, Any]] = []
    texts: list[str] = []
    for shift in range(8):
        for before in range(18):
            record = trail.kms_record(seed=f"pos{shift}-{before}")
            record["eventVersion"] = "1." + "0" * shift  # moves everything after it
            record["userAgent"] = f"@{len(texts)}@"
            texts.append("a" * before + special + "b" * (before % 5))
            records.append(record)
    doc = _doc(records, ensure_ascii=False)
    for number, text in enumerate(texts):
        doc = doc.replace(f'"@{number}@"'.encode(), f'"{text}"'.encode())
    outcomes = {outcome(doc)}
    assert outcomes == ({"fallback: invalid JSON"} if special == "\x01" else {"equal"})


def test_unknown_keys_that_look_like_kept_ones_are_skipped_as_the_reference_does() -> None:
    # A kept key is found by its length and last bytes, then compared byte for byte: keys that
    # share those with a kept one (or are one or two bytes long) are other keys, skipped.
    record = trail.kms_record(seed="look-alike")
    record.update({"eventXime": 5, "eventTame": [1], "XeventID": {"a": 1}, "eventId": None,
                   "e": 1, "ID": 2, "": 3, "userIdentitY": 4})  # fmt: skip
    record["userIdentity"]["arX"] = 1
    record["userIdentity"]["Xarn"] = {"x": [1]}
    assert outcome(_doc([record])) == "equal"


def _fine() -> dict[str, Any]:
    return trail.kms_record(seed="fine")


ODDITIES: list[tuple[str, bytes, int]] = [
    ("invalid UTF-8", _doc([_fine()]).replace(b"Boto3", b"Bo\xffto3"), kernel.INVALID_UTF8),
    ("invalid JSON", _doc([_fine()]).replace(b'"readOnly": true', b'"x": 01'), kernel.SYNTAX),
    ("truncated", _doc([_fine()])[:-7], kernel.SYNTAX),
    ("top level not an object", b"[1, 2]", kernel.SHAPE),
    ("no Records", b'{"digestS3Object": "x"}', kernel.SHAPE),
    ("Records not an array", b'{"Records": {"a": 1}}', kernel.SHAPE),
    ("record not an object", b'{"Records": [null]}', kernel.SHAPE),
    ("kept field a number", _doc([{**_fine(), "eventName": 5}]), kernel.TYPE),
    ("flag as a string", _doc([{**_fine(), "readOnly": "true"}]), kernel.TYPE),
    ("identity not an object", _doc([{**_fine(), "userIdentity": []}]), kernel.TYPE),
    ("resource not an object", _doc([{**_fine(), "resources": ["a"]}]), kernel.TYPE),
    ("duplicate key", _doc([_fine()]).replace(b'"eventName"', b'"eventName": "X", "eventName"'),
     kernel.DUPLICATE),
    ("duplicate Records", b'{"Records": [], "Records": []}', kernel.DUPLICATE),
    ("duplicate keyId", _doc([_fine()]).replace(b'"encryptionAlgorithm"', b'"keyId": "a", '
                                                 b'"keyId": "b", "encryptionAlgorithm"'),
     kernel.DUPLICATE),
    ("nested too deep", _doc([{**_fine(), "additionalEventData": "@"}]).replace(
        b'"@"', b"[" * 60 + b"]" * 60), kernel.DEPTH),
    ("escaped key", _doc([_fine()]).replace(b'"eventName"', b'"event\\u004eame"'),
     kernel.ESCAPED_KEY),
    ("lone surrogate", _doc([{**_fine(), "userAgent": "@"}]).replace(b'"@"', b'"a\\ud800"'),
     kernel.SURROGATE),
    ("trailing garbage", _doc([_fine()]) + b" x", kernel.TRAILING),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "code"), [(d, c) for _, d, c in ODDITIES],
                         ids=[name for name, _, _ in ODDITIES])  # fmt: skip
def test_each_oddity_sends_the_object_to_the_reference_decoder(doc: bytes, code: int) -> None:
    reason = scan.REASONS[code]
    before = scan.STATISTICS.fallbacks[reason]
    assert scan.scan_document(doc) == reason
    assert scan.STATISTICS.fallbacks[reason] == before + 1
    decoded = None
    with pytest.raises(RejectedObject) if isinstance(_reference(doc), str) else _nothing():
        decoded = ct.decode_document(doc, "obj")
    if decoded is not None:
        assert decoded.scanned is None  # the reference decoder read it


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def test_the_reference_switch_turns_the_scanner_off(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc([_fine()])
    assert ct.decode_document(doc, "obj").scanned is not None
    monkeypatch.setenv(ct.SCANNER_ENV, "reference")
    decoded = ct.decode_document(doc, "obj")
    assert decoded.scanned is None
    assert len(decoded.records) == 1


def test_a_batch_mixing_scanned_and_reference_objects_keeps_object_order() -> None:
    first, second, third = (_doc([trail.kms_record(seed=f"{n}-{i}") for i in range(3)])
                            for n in ("a", "b", "c"))  # fmt: skip
    objects = [ct.decode_document(first, "a"), ct.decode_reference(second, "b"),
               ct.decode_document(third, "c")]  # fmt: skip
    assert [o.scanned is not None for o in objects] == [True, False, True]
    mixed, _ = ct.normalise_each(objects)
    reference, _ = ct.normalise_each([ct.decode_reference(d, n) for d, n in
                                      ((first, "a"), (second, "b"), (third, "c"))])  # fmt: skip
    assert mixed.equals(reference)


def test_the_cache_folder_moves_out_of_a_read_only_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # configure_cache_dir sets NUMBA_CACHE_DIR (and numba's own setting) itself: both are put
    # back afterwards, or every later process of this worker would compile the scanner afresh.
    monkeypatch.setenv(CACHE_ENV, "")
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    installed = tmp_path / "site-packages" / "scan"
    installed.parent.mkdir()
    installed.write_text("")  # a file: no __pycache__ can be made inside it
    chosen = configure_cache_dir(installed)
    assert chosen == str(tmp_path / "cache" / "keytrail" / "numba")
    assert Path(chosen).is_dir()
    monkeypatch.setenv(CACHE_ENV, "/given")
    assert configure_cache_dir(installed) == "/given"
    monkeypatch.delenv(CACHE_ENV)
    writable = tmp_path / "package"
    writable.mkdir()
    assert configure_cache_dir(writable) is None


def test_loading_the_scanner_leaves_scipy_unimported_but_importable() -> None:
    # A fresh process, as an ingest starts: numba's BLAS probe must not pull scipy.linalg in, and it
    # (which the detectors import after an ingest in the nightly flow) must still import.
    script = (
        "import sys\n"
        "from analytics.ingest import scan\n"
        "scan.load()\n"
        "assert not any(m.startswith('scipy.linalg') for m in sys.modules), 'loaded'\n"
        "import scipy.linalg.cython_blas, sklearn.ensemble\n"
        "assert not isinstance(scan.scan_document(scan.LOAD_DOCUMENT), str)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# Generated documents: CloudTrail-shaped records whose kept fields take any value, with escapes,
# unknown fields and whatever whitespace a producer writes.
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
NAMES = st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False,
                                                                           allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES | TEXT, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
STRING_FIELDS = ["eventID", "eventTime", "eventVersion", "eventSource", "eventName", "eventType",
                 "eventCategory", "awsRegion", "recipientAccountId", "sourceIPAddress",
                 "userAgent", "errorCode", "errorMessage", "sharedEventID", "requestID",
                 "vpcEndpointId"]  # fmt: skip
IDENTITY_FIELDS = ["type", "principalId", "arn", "accountId", "userName", "invokedBy",
                   "identityProvider"]  # fmt: skip
SOURCES = st.sampled_from(["kms.amazonaws.com", "s3.amazonaws.com", "kms.amazonaws.com "])
MOSTLY_TEXT = st.sampled_from(range(24)).flatmap(
    lambda n: (
        JSON_VALUES if n == 7 else st.none() if n in (3, 11) else st.just("") if n == 5 else TEXT
    )
)
"""Text most of the time; now and then null, empty, or a value of any other type."""


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = trail.kms_record(seed=draw(TEXT))
    for name in draw(st.lists(st.sampled_from(STRING_FIELDS), max_size=3)):
        record[name] = draw(MOSTLY_TEXT)
    record["eventSource"] = draw(SOURCES | MOSTLY_TEXT)
    identity = record["userIdentity"]
    for name in draw(st.lists(st.sampled_from(IDENTITY_FIELDS), max_size=3)):
        identity[name] = draw(MOSTLY_TEXT)
    if draw(st.booleans()):
        identity["onBehalfOf"] = draw(st.none() | st.fixed_dictionaries({"userId": MOSTLY_TEXT}))
    if draw(st.booleans()):
        identity["sessionContext"] = draw(st.none() | st.fixed_dictionaries(
            {"sessionIssuer": st.none() | st.fixed_dictionaries({"arn": MOSTLY_TEXT})}))  # fmt: skip
    arns = st.sampled_from([trail.KEY_ARN, "", "arn:aws:kms:r:1:alias/a", "key/x"]) | MOSTLY_TEXT
    record["resources"] = draw(st.none() | st.lists(
        st.fixed_dictionaries({}, optional={"ARN": arns, "arn": arns, "type": TEXT}), max_size=3))  # fmt: skip
    record["requestParameters"] = draw(st.none() | JSON_VALUES | st.fixed_dictionaries(
        {}, optional={"keyId": MOSTLY_TEXT, "encryptionContext": JSON_VALUES, "x": JSON_VALUES}))  # fmt: skip
    for name in ("responseElements", "additionalEventData", "serviceEventDetails"):
        if draw(st.booleans()):
            record[name] = draw(JSON_VALUES)
    for name in ("readOnly", "managementEvent"):
        flags = [None, *[True, False] * 12, "true", 1]
        record[name] = draw(st.sampled_from(flags))
    for name, value in draw(st.dictionaries(NAMES | TEXT, JSON_VALUES, max_size=3)).items():
        record.setdefault(name, value)
    if draw(st.booleans()):
        del record["eventID"]
    return record


@fuzz_settings()
@given(st.lists(records(), max_size=4), st.sampled_from([None, 1, "\t"]), st.booleans())
def test_generated_documents_scan_equal_to_the_reference_or_fall_back(
    recs: list[dict[str, Any]], indent: int | str | None, ascii_only: bool
) -> None:
    doc = _doc(recs, indent=indent, ensure_ascii=ascii_only)
    assert outcome(doc) == "equal" or outcome(doc).startswith("fallback: ")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")  # strict: no surrogates, overlong forms or code points past U+10FFFF
    except UnicodeDecodeError:
        return False
    return True


UTF8_PIECES = [b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x82\xac", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80",
               b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\x80", b"a"]  # fmt: skip


@given(st.lists(st.sampled_from(UTF8_PIECES), max_size=4), st.integers(0, 40))
def test_the_utf8_check_agrees_with_pythons_strict_decoder(pieces: list[bytes], after: int) -> None:
    # ASCII runs of every length and alignment before the odd bytes: the check skips ASCII a
    # word, and four words, at a time, and must never skip past a byte it should have judged.
    for before in range(80):
        data = b"x" * before + b"".join(pieces) + b"y" * after
        assert kernel.valid_utf8(np.frombuffer(data, dtype=np.uint8)) == _is_utf8(data), data


TOKENS = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"\\ud800", b"\\u00e9", b"null",
          b"0", b"-", b"1e5", b" ", b"\xff", b"\xc3", b"\x00", b'"eventName":"x",', b"true"]  # fmt: skip


@fuzz_settings()
@given(st.integers(0, 119), st.lists(st.tuples(st.floats(0, 1), st.sampled_from(TOKENS),
                                               st.sampled_from(["insert", "replace", "cut"])),
                                     min_size=1, max_size=4))  # fmt: skip
def test_mutated_real_objects_scan_equal_to_the_reference_or_fall_back(
    which: int, edits: list[tuple[float, bytes, str]]
) -> None:
    doc = bytearray(_SAMPLES[which % len(_SAMPLES)])
    for where, token, how in edits:
        at = int(where * (len(doc) - 1))
        if how == "insert":
            doc[at:at] = token
        elif how == "replace":
            doc[at : at + len(token)] = token
        else:
            del doc[at:]
    result = outcome(bytes(doc))
    assert result == "equal" or result.startswith("fallback: ")


_SAMPLES = [d for d in _sample_documents(40) if len(d) < 64 * 1024][:12] or [_doc([_fine()])]


def _public_records() -> list[list[dict[str, Any]]]:
    documents = []
    stratus = DATASETS / "stratus-red-team-detonations"
    for path in sorted(stratus.glob("*.json")):
        documents.append(json.loads(path.read_text()))
    panther = DATASETS / "panther-cloudtrail-tests" / "cloudtrail_rule_tests.jsonl"
    if panther.exists():
        lines = panther.read_text().splitlines()
        documents.extend([json.loads(line)["log"]] for line in lines if line.strip())
    return documents


@pytest.mark.skipif(not DATASETS.exists(), reason="../shared/datasets is not present here")
def test_public_records_scan_equal_to_the_reference_or_fall_back() -> None:
    results = [outcome(_doc(recs)) for recs in _public_records()]
    assert results, "no public records found"
    assert all(r == "equal" or r.startswith("fallback: ") for r in results)
    assert results.count("equal") >= 0.95 * len(results)


def test_hostile_bytes_never_crash_the_kernel() -> None:
    rng = random.Random(7)
    base = _doc([_fine()])
    for _ in range(300):
        doc = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            doc[rng.randrange(len(doc))] = rng.randrange(256)
        cut = bytes(doc[: rng.randrange(1, len(doc) + 1)])
        result = outcome(cut)
        assert result == "equal" or result.startswith("fallback: ")
    assert outcome(gzip.decompress(gzip.compress(base))) == "equal"


@pytest.mark.slow
def test_the_sample_trail_ingests_to_the_same_lake_on_either_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakes, summaries = {}, {}
    for mode in ("compiled", "reference"):
        monkeypatch.setenv(ct.SCANNER_ENV, mode)
        lakes[mode] = tmp_path / mode
        summaries[mode] = ingest_json(str(SAMPLES), "--lake", str(lakes[mode]), "--workers", "2")
    assert_same_lake(lakes["compiled"], lakes["reference"], [])
    compiled, reference = summaries["compiled"], summaries["reference"]
    assert compiled["objects_scanned"] == compiled["objects_ingested"] > 3000
    assert reference["objects_scanned"] == 0 and reference["scanner_fallbacks"] == {}
    for field in ("events_written", "objects_quarantined", "records_quarantined",
                  "objects_with_notes", "quarantined"):  # fmt: skip
        assert compiled[field] == reference[field], field


def test_without_numba_ingest_falls_back_to_the_reference_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    import analytics.ingest

    monkeypatch.delattr(analytics.ingest, "scan")
    monkeypatch.setitem(sys.modules, "analytics.ingest.scan", None)  # the import now fails
    monkeypatch.setattr(ct, "_SCANNER_FAILURE", None)
    assert not ct.scanner_enabled()
    assert ct._SCANNER_FAILURE is not None
    decoded = ct.decode_document(_doc([_fine()]), "obj")
    assert decoded.scanned is None and len(decoded.records) == 1


def test_a_scanner_that_fails_to_load_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # The ingest loads the scanner on a thread of its own; if its kernels fail on their own
    # small document, every document goes to the reference decoder instead.
    def broken() -> None:
        raise RuntimeError("the scanner refused its own load document")

    monkeypatch.setattr(scan, "load", broken)
    monkeypatch.setattr(ct, "_SCANNER_FAILURE", None)
    loader = ct.load_scanner_early()
    assert loader is not None
    loader.join()
    assert not ct.scanner_enabled()
    assert "refused its own load document" in str(ct._SCANNER_FAILURE)
    decoded = ct.decode_document(_doc([_fine()]), "obj")
    assert decoded.scanned is None and len(decoded.records) == 1


_BOUNDS_SCRIPT = """
import random, sys
from analytics.ingest import scan
from tests.ingest.test_scanner import ODDITIES, _SAMPLES
documents = [doc for _, doc, _ in ODDITIES] + list(_SAMPLES)
escapes = ODDITIES[0][1].replace(b"Bo\\xffto3", b"a\\\\u00e9\\\\ud83d\\\\ude00\\\\n\\\\\\"")
documents += [escapes[:cut] for cut in range(1, len(escapes) + 1)]  # every prefix
rng = random.Random(5)
for _ in range(2000):
    doc = bytearray(rng.choice(_SAMPLES))
    for _ in range(rng.randint(1, 8)):
        doc[rng.randrange(len(doc))] = rng.choice(b'"\\\\{}[],:0123456789nutrefals \\xff\\xc3')
    documents.append(bytes(doc[: rng.randrange(1, len(doc) + 1)]))
taken = 0
for doc in documents:  # an index out of bounds raises IndexError here and fails the run
    scanned = scan.scan_document(doc)
    if not isinstance(scanned, str):
        scan.to_columns([scanned])
        taken += 1
print(taken, len(documents))
"""


@pytest.mark.slow
def test_the_kernels_never_index_out_of_bounds(tmp_path: Path) -> None:
    """The kernels compiled with numba's bounds checks on (off in production) read hostile
    documents without a single index past an array's end."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=600, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    taken, total = (int(x) for x in run.stdout.split())
    assert 0 < taken < total


def _gather_arrays(scanned: scan.Scanned) -> dict[str, Any]:
    """The arrays :func:`scan.to_columns` hands the gather kernel for one object."""
    import numpy as np

    columns = len(scan.TEXT_COLUMNS)
    bases = np.zeros(columns + 1, dtype=np.int64)
    np.cumsum(scanned.sizes, out=bases[1:])
    return {
        "offsets": np.zeros((columns, scanned.rows + 1), dtype=np.int64),
        "data": np.zeros(int(bases[-1]), dtype=np.uint8),
        "bases": bases,
        "cursors": bases[:-1].copy(),
        "validity": np.zeros((columns + 4, (scanned.rows + 7) // 8), dtype=np.uint8),
    }


def _gather(scanned: scan.Scanned, arrays: dict[str, Any]) -> bool:
    return bool(kernel.gather(scanned.view, scanned.kinds, scanned.starts, scanned.ends,
                              scanned.rows, 0, scan._TEXT_SLOTS, arrays["offsets"],
                              arrays["data"], arrays["bases"], arrays["cursors"],
                              arrays["validity"]))  # fmt: skip


@pytest.mark.parametrize(
    "misfit",
    ["data one byte short", "region past data", "cursor outside its region", "offsets short",
     "validity short", "validity rows"],
)  # fmt: skip
def test_the_gather_refuses_arrays_that_do_not_fit_each_other(misfit: str) -> None:
    """The copies into the data buffer are unchecked memcpys: the kernel first proves the
    arrays it is given hold every value, or writes nothing and returns False."""
    import numpy as np

    scanned = scan.scan_document(_sample_documents(1)[0])
    assert not isinstance(scanned, str)
    assert _gather(scanned, _gather_arrays(scanned))  # as given by to_columns: fits
    arrays = _gather_arrays(scanned)
    if misfit == "data one byte short":
        arrays["data"] = arrays["data"][:-1]
    elif misfit == "region past data":
        arrays["bases"][1:] += 1
    elif misfit == "cursor outside its region":
        arrays["cursors"][3] = arrays["bases"][4] + 1
    elif misfit == "offsets short":
        arrays["offsets"] = arrays["offsets"][:, :-1].copy()
    elif misfit == "validity short":
        arrays["validity"] = np.zeros((len(scan.TEXT_COLUMNS) + 4, 0), dtype=np.uint8)
    else:
        arrays["validity"] = arrays["validity"][:-1].copy()
    data = arrays["data"].copy()
    assert not _gather(scanned, arrays)
    assert np.array_equal(arrays["data"], data)
