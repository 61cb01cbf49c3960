"""The signed ledger: chain, tamper detection, concurrency, export and keys."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import stat

import pytest
from sqlalchemy import delete, select, text, update

from bot.db.models import LedgerEntry, LedgerHead
from bot.db.session import create_engine, create_session_factory
from bot.ledger import (
    GENESIS_HASH,
    Signer,
    append_entry,
    canonical_bytes,
    export_evidence,
    jsonable,
    load_public_key,
    verify_chain,
    verify_export,
)
from tests.helpers import T0, append_n


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate()


async def verify(session_factory, key):
    async with session_factory() as session:
        return await verify_chain(session, key)


async def test_chain_of_50_verifies(session_factory, signer):
    entries = await append_n(session_factory, signer, 50)
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    report = await verify(session_factory, signer.public_key)
    assert report.ok, report.problems
    assert report.entries == 50
    assert report.last_hash == entries[-1].hash
    async with session_factory() as session:
        head = await session.get(LedgerHead, 1)
        assert head.last_entry_id == entries[-1].id and head.last_hash == entries[-1].hash
        # What was stored is exactly what was hashed (datetimes in proof became ISO strings).
        stored = await session.get(LedgerEntry, entries[3].id)
        assert stored.proof["at"] == "2026-03-02T09:00:00.000000+00:00"
        assert stored.created_at == T0 + dt.timedelta(seconds=3, microseconds=3)


async def test_empty_ledger_verifies(session_factory, signer):
    report = await verify(session_factory, signer.public_key)
    assert report.ok and report.entries == 0


async def test_append_does_not_commit(session_factory, signer):
    async with session_factory() as session:
        await session.begin()
        await append_n_in(session, signer)
        await session.rollback()
    async with session_factory() as session:
        assert (await session.scalars(select(LedgerEntry))).all() == []
        head = await session.get(LedgerHead, 1)
        assert head.last_hash == GENESIS_HASH and head.last_entry_id is None


async def append_n_in(session, signer):
    return await append_entry(
        session, signer, created_at=T0, outcome="denied", rule="r", reason="x", proof={}, controls=[]
    )


@pytest.mark.parametrize("column", ["reason", "proof"])
async def test_edited_row_is_detected(session_factory, signer, column):
    entries = await append_n(session_factory, signer, 10)
    victim = entries[4]
    value = "Approved by nobody." if column == "reason" else {"subject_id": 1}
    async with session_factory() as session, session.begin():
        await session.execute(update(LedgerEntry).where(LedgerEntry.id == victim.id).values({column: value}))
    report = await verify(session_factory, signer.public_key)
    assert not report.ok
    assert report.problems == [f"entry {victim.id}: hash does not match its contents (edited?)"]


async def test_edited_row_with_recomputed_hash_is_detected(session_factory, signer):
    from bot.ledger import entry_hash

    entries = await append_n(session_factory, signer, 5)
    victim = entries[2]
    async with session_factory() as session, session.begin():
        row = await session.get(LedgerEntry, victim.id)
        row.reason = "forged"
        row.hash = entry_hash({c: getattr(row, c) for c in canonical_fields()})
    report = await verify(session_factory, signer.public_key)
    assert f"entry {victim.id}: signature invalid for key {signer.key_id}" in report.problems
    assert any(p.startswith(f"entry {entries[3].id}: previous hash") for p in report.problems)


def canonical_fields():
    from bot.ledger import CONTENT_FIELDS

    return CONTENT_FIELDS


async def test_deleted_middle_row_is_detected(session_factory, signer):
    entries = await append_n(session_factory, signer, 10)
    async with session_factory() as session, session.begin():
        await session.execute(delete(LedgerEntry).where(LedgerEntry.id == entries[5].id))
    report = await verify(session_factory, signer.public_key)
    assert report.problems == [
        f"entry {entries[6].id}: previous hash does not match entry {entries[4].id} (entry removed or reordered?)"
    ]


async def test_deleted_first_row_is_detected(session_factory, signer):
    entries = await append_n(session_factory, signer, 3)
    async with session_factory() as session, session.begin():
        await session.execute(delete(LedgerEntry).where(LedgerEntry.id == entries[0].id))
    report = await verify(session_factory, signer.public_key)
    assert not report.ok
    assert f"entry {entries[1].id}: previous hash does not match the start" in report.problems[0]


async def test_deleted_tail_is_detected_via_head(session_factory, signer):
    entries = await append_n(session_factory, signer, 20)
    async with session_factory() as session, session.begin():
        await session.execute(delete(LedgerEntry).where(LedgerEntry.id == entries[-1].id))
    report = await verify(session_factory, signer.public_key)
    assert report.problems == [
        f"head names entry {entries[-1].id} but the last entry is {entries[-2].id} "
        "(entries deleted at the end?)"
    ]


async def test_signature_from_another_key_is_detected(session_factory, signer):
    other = Signer.generate()
    await append_n(session_factory, signer, 3)
    forged = await append_n(session_factory, other, 1, start=3)
    await append_n(session_factory, signer, 2, start=4)
    report = await verify(session_factory, signer.public_key)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"entry {forged[0].id}: signed by key {other.key_id}")
    # A signature that names the right key but was made by another is invalid too.
    async with session_factory() as session, session.begin():
        await session.execute(
            update(LedgerEntry).where(LedgerEntry.id == forged[0].id).values(key_id=signer.key_id)
        )
    report = await verify(session_factory, signer.public_key)
    assert report.problems == [f"entry {forged[0].id}: signature invalid for key {signer.key_id}"]
    # Both keys given (a key rotation): valid again.
    async with session_factory() as session, session.begin():
        await session.execute(
            update(LedgerEntry).where(LedgerEntry.id == forged[0].id).values(key_id=other.key_id)
        )
    report = await verify(session_factory, [signer.public_key, other.public_key])
    assert report.ok, report.problems


async def test_export_round_trip_and_tamper(session_factory, signer, tmp_path):
    entries = await append_n(session_factory, signer, 12)
    out = tmp_path / "evidence"
    async with session_factory() as session:
        await export_evidence(session, out, signer)
    assert {p.name for p in out.iterdir()} == {"ledger.jsonl", "public_key.pem", "head.json", "README.txt"}
    assert signer.key_id in (out / "README.txt").read_text()
    report = verify_export(out)
    assert report.ok, report.problems
    assert report.entries == 12 and report.warnings == []

    lines = (out / "ledger.jsonl").read_bytes().splitlines()
    first = json.loads(lines[0])
    assert first["id"] == entries[0].id and first["hash"] == entries[0].hash
    # Each line is canonical JSON.
    assert lines[0] == json.dumps(first, sort_keys=True, separators=(",", ":")).encode()

    # Tamper with one line's reason.
    tampered = json.loads(lines[7])
    tampered["reason"] = "nothing to see"
    lines[7] = json.dumps(tampered, sort_keys=True, separators=(",", ":")).encode()
    (out / "ledger.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    report = verify_export(out)
    assert report.problems == [f"entry {entries[7].id}: hash does not match its contents (edited?)"]

    # Cutting lines off the end is caught by the signed head.
    (out / "ledger.jsonl").write_bytes(b"\n".join(lines[:7]) + b"\n")
    report = verify_export(out)
    assert any("head.json names entry" in p for p in report.problems)

    # And a head rewritten to match is caught by its signature.
    head = json.loads((out / "head.json").read_text())
    head.update(entries=7, last_entry_id=entries[6].id, last_hash=entries[6].hash)
    head.update(db_head_entry_id=entries[6].id, db_head_hash=entries[6].hash)
    (out / "head.json").write_text(json.dumps(head))
    report = verify_export(out)
    assert report.problems == [f"head.json: signature invalid for key {signer.key_id}"]

    # A key swapped in the export does not help when the auditor brings the real one.
    assert not verify_export(out, public_key_pem=Signer.generate().public_key_pem()).ok


async def test_export_with_public_key_only_warns(session_factory, signer, tmp_path):
    await append_n(session_factory, signer, 2)
    async with session_factory() as session:
        await export_evidence(session, tmp_path, signer.public_key_pem())
    report = verify_export(tmp_path)
    assert report.ok and report.entries == 2
    assert report.warnings == ["head.json is not signed: lines removed from the end cannot be detected"]


async def test_export_of_db_with_deleted_tail_is_flagged(session_factory, signer, tmp_path):
    entries = await append_n(session_factory, signer, 4)
    async with session_factory() as session, session.begin():
        await session.execute(delete(LedgerEntry).where(LedgerEntry.id == entries[-1].id))
    async with session_factory() as session:
        await export_evidence(session, tmp_path, signer)
    report = verify_export(tmp_path)
    assert not report.ok
    assert any("deleted at the end before export" in p for p in report.problems)


async def test_many_entries_in_one_transaction_then_one_alone(session_factory, signer):
    """A batch (an audit-log page) takes its ids under the head lock and writes the head once at
    commit; the next transaction's entry still gets a fresh id (PostgreSQL's sequence moved on)
    and the chain has no gap or fork."""

    async def append(session, i):
        return await append_entry(
            session, signer, created_at=T0, outcome="alert", rule="r", reason=f"#{i}", proof={}, controls=[]
        )

    async with session_factory() as session, session.begin():
        first = [await append(session, i) for i in range(5)]
    async with session_factory() as session, session.begin():
        batch = [await append(session, i) for i in range(5, 30)]
    async with session_factory() as session, session.begin():
        alone = await append(session, 30)
        # A rolled-back batch leaves no trace: its ids are free again.
        await session.flush()
    with contextlib.suppress(RuntimeError):
        async with session_factory() as session, session.begin():
            for i in range(3):
                await append(session, 100 + i)
            raise RuntimeError("rolled back")
    async with session_factory() as session, session.begin():
        last = await append(session, 31)
    ids = [e.id for e in (*first, *batch, alone, last)]
    assert ids == list(range(ids[0], ids[0] + 32))
    report = await verify(session_factory, signer.public_key)
    assert report.ok and report.entries == 32, report.problems
    async with session_factory() as session:
        head = await session.get(LedgerHead, 1)
        assert (head.last_entry_id, head.last_hash) == (last.id, last.hash)


async def test_concurrent_appends_do_not_fork(engine, signer, db_url):
    """Two engines (two processes) appending at once produce one chain."""
    second = create_engine(db_url)
    factories = [create_session_factory(engine), create_session_factory(second)]
    if engine.dialect.name == "sqlite":
        # SQLite is single-writer; two processes would fail with "database is locked"
        # rather than fork. Within one process the pooled connection serialises writers.
        factories = [factories[0], factories[0]]

    async def worker(factory, n):
        for i in range(20):
            async with factory() as session, session.begin():
                await append_entry(
                    session,
                    signer,
                    created_at=T0,
                    outcome="voted",
                    rule="quorum",
                    reason=f"worker {n} vote {i}",
                    proof={"worker": n, "i": i},
                    controls=[],
                    guild_id=1,
                )
                await asyncio.sleep(0)

    try:
        await asyncio.gather(worker(factories[0], 0), worker(factories[1], 1))
        report = await verify(factories[0], signer.public_key)
        assert report.ok, report.problems
        assert report.entries == 40
        async with factories[0]() as session:
            prevs = (await session.scalars(select(LedgerEntry.prev_hash))).all()
        assert len(set(prevs)) == 40  # no two entries share a predecessor
    finally:
        await second.dispose()


async def test_verify_streams_in_pages(session_factory, signer, monkeypatch):
    import bot.ledger as ledger

    monkeypatch.setattr(ledger, "PAGE_SIZE", 7)
    await append_n(session_factory, signer, 23)
    report = await verify(session_factory, signer.public_key)
    assert report.ok and report.entries == 23


async def test_head_row_missing_is_reported(session_factory, signer):
    async with session_factory() as session, session.begin():
        await session.execute(text("DELETE FROM ledger_head"))
    report = await verify(session_factory, signer.public_key)
    assert report.problems == ["the ledger_head row is missing"]
    async with session_factory() as session:
        with pytest.raises(RuntimeError, match="warden migrate"):
            await append_n_in(session, signer)


def test_key_file_created_0600_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "ledger.pem"
    with pytest.raises(FileNotFoundError):
        Signer.from_file(path)
    created = Signer.from_file(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    reloaded = Signer.from_file(path)
    assert reloaded.key_id == created.key_id
    assert Signer.from_file(path, create=True).key_id == created.key_id  # never overwritten
    assert load_public_key(created.public_key_pem()) is not None


def test_key_file_readable_by_others_warns(tmp_path, caplog):
    path = tmp_path / "ledger.pem"
    Signer.from_file(path, create=True)
    path.chmod(0o644)
    with caplog.at_level("WARNING"):
        Signer.from_file(path)
    assert "readable by others" in caplog.text


def test_private_key_never_in_repr(tmp_path):
    path = tmp_path / "k.pem"
    s = Signer.from_file(path, create=True)
    secret = path.read_text().splitlines()[1]
    for shown in (repr(s), str(s), f"{s}", repr([s])):
        assert secret not in shown
        assert shown == f"Signer(key_id={s.key_id!r})" or s.key_id in shown
    assert not hasattr(s, "__dict__")
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_key_id_is_sha256_of_raw_public_key():
    import hashlib

    from cryptography.hazmat.primitives import serialization

    s = Signer.generate()
    raw = s.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert s.key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_load_public_key_rejects_other_algorithms():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key(pem)


def test_canonical_bytes_are_stable():
    record = {
        "prev_hash": GENESIS_HASH,
        "created_at": T0,
        "guild_id": 1,
        "outcome": "granted",
        "rule": "r",
        "reason": "é",
        "proof": {"b": 1, "a": [T0, 2**70]},
        "controls": ["SOC2:CC6.2"],
        "actor_id": None,
        "request_id": None,
        "grant_id": None,
    }
    assert canonical_bytes(record) == (
        b'{"actor_id":null,"controls":["SOC2:CC6.2"],"created_at":"2026-03-02T09:00:00.000000+00:00",'
        b'"grant_id":null,"guild_id":1,"outcome":"granted","prev_hash":"' + GENESIS_HASH.encode() + b'",'
        b'"proof":{"a":["2026-03-02T09:00:00.000000+00:00",1180591620717411303424],"b":1},'
        b'"reason":"\\u00e9","request_id":null,"rule":"r"}'
    )


def test_jsonable():
    import enum

    class Colour(enum.StrEnum):
        RED = "red"

    assert jsonable({1: (Colour.RED, {2}), "t": dt.timedelta(seconds=90)}) == {"1": ["red", [2]], "t": 90.0}
    with pytest.raises(ValueError, match="naive"):
        jsonable(dt.datetime(2026, 1, 1))  # noqa: DTZ001 (a naive time is what this refuses)
    with pytest.raises(TypeError):
        jsonable(object())
