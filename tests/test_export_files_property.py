"""Hostile export files: `verify --export` never raises, and every change is a clear failure line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.ledger import (
    EXPORT_FIELDS,
    GENESIS_HASH,
    Signer,
    dumps_canonical,
    entry_hash,
    iso_utc,
    verify_export,
)
from tests.helpers import T0

SIGNER = Signer.generate()


def valid_records(n: int = 3) -> list[dict[str, Any]]:
    prev, records = GENESIS_HASH, []
    for i in range(1, n + 1):
        record: dict[str, Any] = {
            "id": i,
            "prev_hash": prev,
            "created_at": iso_utc(T0),
            "guild_id": 900,
            "outcome": "granted",
            "rule": "scope:deploy",
            "reason": f"Approved ({i}).",
            "proof": {"subject_id": 10**17 + i, "votes": [{"approver_id": 5}]},
            "controls": ["SOC2:CC6.2"],
            "actor_id": 42,
            "request_id": i,
            "grant_id": None,
        }
        record["hash"] = entry_hash(record)
        record["signature"] = SIGNER.sign(record["hash"].encode("ascii"))
        record["key_id"] = SIGNER.key_id
        prev = record["hash"]
        records.append(record)
    return records


RECORDS = valid_records()


def write_export(directory: Path, lines: list[bytes]) -> None:
    last = RECORDS[-1]
    head: dict[str, Any] = {
        "entries": len(RECORDS),
        "last_entry_id": last["id"],
        "last_hash": last["hash"],
        "db_head_entry_id": last["id"],
        "db_head_hash": last["hash"],
        "key_id": SIGNER.key_id,
        "anchor_entry_id": None,
        "anchor_hash": GENESIS_HASH,
        "keys": [],
    }
    head["signature"] = SIGNER.sign(dumps_canonical(head))
    (directory / "head.json").write_text(json.dumps(head))
    (directory / "public_key.pem").write_bytes(SIGNER.public_key_pem())
    (directory / "ledger.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def canonical_line(record: Any) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def check(lines: list[bytes]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        write_export(Path(tmp), lines)
        report = verify_export(tmp)  # must not raise, whatever the lines hold
    for problem in report.problems:
        assert problem and "\n" not in problem and "Traceback" not in problem
    assert report.ok == (not report.problems)
    return report


def test_the_untouched_export_verifies():
    assert check([canonical_line(r) for r in RECORDS]).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.integers(0, 2), field=st.sampled_from(EXPORT_FIELDS), value=json_values)
def test_a_field_of_any_type_or_value_never_crashes(line, field, value):
    records = [dict(r) for r in RECORDS]
    records[line][field] = value
    report = check([canonical_line(r) for r in records])
    if canonical_line(records[line]) != canonical_line(RECORDS[line]):
        assert not report.ok
        assert any(p.startswith((f"line {line + 1}:", "entry ")) for p in report.problems)


@settings(max_examples=100, deadline=None)
@given(line=st.integers(0, 2), field=st.sampled_from(EXPORT_FIELDS))
def test_a_missing_field_names_the_line_and_the_field(line, field):
    records = [dict(r) for r in RECORDS]
    del records[line][field]
    report = check([canonical_line(r) for r in records])
    assert f"line {line + 1}: missing {field}" in report.problems


@settings(max_examples=150, deadline=None)
@given(junk=st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | json_values.map(canonical_line))
def test_any_line_inserted_is_a_failure_with_its_line_number(junk):
    lines = [canonical_line(r) for r in RECORDS]
    lines.insert(1, junk.replace(b"\n", b" ").replace(b"\r", b" "))
    report = check(lines)
    if junk.strip():
        assert not report.ok
        assert report.problems[0].startswith(("line 2:", "entry ")), report.problems


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 3000))
def test_deeply_nested_lines_do_not_crash(depth):
    lines = [canonical_line(r) for r in RECORDS]
    lines[1] = b"[" * depth + b"]" * depth
    report = check(lines)
    assert report.problems[0] == "line 2: not a JSON object but a list" or report.problems[0].startswith(
        "line 2: not valid JSON"
    )


HEAD_KEYS = [
    "entries",
    "last_entry_id",
    "last_hash",
    "db_head_entry_id",
    "db_head_hash",
    "key_id",
    "anchor_entry_id",
    "anchor_hash",
    "first_entry_id",
    "keys",
    "signature",
]


@settings(max_examples=150, deadline=None)
@given(head=json_values | st.dictionaries(st.sampled_from(HEAD_KEYS), json_values, max_size=8))
def test_any_head_json_never_crashes_and_never_passes(head):
    with tempfile.TemporaryDirectory() as tmp:
        write_export(Path(tmp), [canonical_line(r) for r in RECORDS])
        (Path(tmp) / "head.json").write_text(json.dumps(head))
        report = verify_export(tmp, checkpoints=[])
    assert not report.ok
    assert all(p and "\n" not in p for p in report.problems)


@settings(max_examples=100, deadline=None)
@given(
    doc=json_values
    | st.dictionaries(st.sampled_from([*HEAD_KEYS, "format", "head_hash", "created_at"]), json_values)
)
def test_any_checkpoint_file_is_refused_with_a_sentence(doc):
    from bot.ledger import read_checkpoints

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cp.json"
        path.write_text(json.dumps(doc))
        write_export(Path(tmp), [canonical_line(r) for r in RECORDS])
        report = verify_export(tmp, checkpoints=read_checkpoints([path]))
    assert not report.ok
    assert any(p.startswith(f"checkpoint {path}") for p in report.problems)
