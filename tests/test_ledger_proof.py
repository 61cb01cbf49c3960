"""What an auditor needs beyond the chain: checkpoints, key rotation, partial exports, hostile files."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from bot.db.models import LedgerEntry, LedgerHead, LedgerKey
from bot.ledger import (
    LedgerKeyError,
    Signer,
    append_entry,
    checkpoint_to,
    export_evidence,
    open_signer,
    read_checkpoints,
    rotate_key,
    verify_chain,
    verify_export,
    write_checkpoint,
)
from tests.helpers import T0, append_n

REPO = Path(__file__).resolve().parents[1]
NOW = T0 + dt.timedelta(days=1)


async def checkpoint(session_factory, signer, path):
    """As the scheduler does it: one transaction, a checkpoint back with its narrative."""
    return await checkpoint_to(session_factory, signer, path, now=NOW)


async def verify(session_factory, key, checkpoint_paths=()):
    async with session_factory() as session:
        return await verify_chain(session, key, checkpoints=read_checkpoints(checkpoint_paths))


async def cut_tail(session_factory, keep_through: LedgerEntry):
    """What an attacker with database access does: delete the newest rows and move the head back."""
    async with session_factory() as session, session.begin():
        await session.execute(delete(LedgerEntry).where(LedgerEntry.id > keep_through.id))
        await session.execute(
            update(LedgerHead).values(last_entry_id=keep_through.id, last_hash=keep_through.hash)
        )


# ------------------------------------------------------------------ checkpoints


async def test_truncated_tail_is_caught_by_a_checkpoint(session_factory, tmp_path):
    signer = Signer.generate()
    entries = await append_n(session_factory, signer, 10)
    cp = await checkpoint(session_factory, signer, tmp_path / "cp.json")
    assert (cp.entries, cp.last_entry_id, cp.head_hash) == (10, entries[-1].id, entries[-1].hash)
    assert cp.narrative().startswith(f"Ledger checkpoint: 10 entries, head entry {entries[-1].id}")
    report = await verify(session_factory, signer.public_key, [tmp_path / "cp.json"])
    assert report.ok, report.problems
    assert report.checkpoints == 1

    await cut_tail(session_factory, entries[6])
    # The chain alone cannot tell: what is left is a valid, shorter chain.
    assert (await verify(session_factory, signer.public_key)).ok
    report = await verify(session_factory, signer.public_key, [tmp_path / "cp.json"])
    assert not report.ok
    assert report.problems == [
        f"checkpoint {tmp_path / 'cp.json'} ({cp.created_at}) records 10 entries up to entry "
        f"{entries[-1].id}, but the ledger ends at entry {entries[6].id} with 7 entries: "
        "entries were removed from the end"
    ]


async def test_rewritten_tail_diverges_from_the_checkpoint(session_factory, tmp_path):
    signer = Signer.generate()
    entries = await append_n(session_factory, signer, 6)
    await checkpoint(session_factory, signer, tmp_path)
    await cut_tail(session_factory, entries[3])
    # Re-appended with the real key (an insider): same length again, other content.
    await append_n(session_factory, signer, 2, start=100)
    report = await verify(session_factory, signer.public_key, [tmp_path])
    assert not report.ok
    assert len(report.problems) == 1
    assert re.search(r"checkpoint .*checkpoint-\d+T\d+Z-6\.json", report.problems[0])
    assert "missing from the ledger" in report.problems[0] or "has hash" in report.problems[0]


async def test_forged_or_foreign_checkpoint_is_rejected(session_factory, tmp_path):
    signer = Signer.generate()
    entries = await append_n(session_factory, signer, 5)
    await checkpoint(session_factory, signer, tmp_path / "cp.json")
    await cut_tail(session_factory, entries[2])
    # The attacker rewrites the checkpoint to match what they left.
    doc = json.loads((tmp_path / "cp.json").read_text())
    doc.update(entries=3, last_entry_id=entries[2].id, head_hash=entries[2].hash)
    (tmp_path / "cp.json").write_text(json.dumps(doc))
    report = await verify(session_factory, signer.public_key, [tmp_path / "cp.json"])
    assert report.problems == [
        f"checkpoint {tmp_path / 'cp.json'}: signature invalid for key {signer.key_id} (forged or edited); "
        "it proves nothing"
    ]
    # Or signs one with a key of their own.
    other = Signer.generate()
    async with session_factory() as session:
        forged = await write_checkpoint(session, other, tmp_path / "other.json", now=NOW)
    report = await verify(session_factory, signer.public_key, [tmp_path / "other.json"])
    assert report.problems == [
        f"checkpoint {forged.source}: signed by key {other.key_id}, which is not among the keys given"
    ]
    # Not a checkpoint at all.
    (tmp_path / "junk.json").write_text('{"id": "2"}')
    report = await verify(session_factory, signer.public_key, [tmp_path / "junk.json"])
    assert not report.ok and "not a Warden ledger checkpoint" in report.problems[0]


async def test_checkpoint_of_an_empty_ledger_and_export_checkpoints(session_factory, tmp_path):
    signer = Signer.generate()
    await checkpoint(session_factory, signer, tmp_path / "empty.json")
    entries = await append_n(session_factory, signer, 4)
    await checkpoint(session_factory, signer, tmp_path / "four.json")
    report = await verify(
        session_factory, signer.public_key, [tmp_path / "empty.json", tmp_path / "four.json"]
    )
    assert report.ok and report.checkpoints == 2
    # An export taken after the tail was cut is caught against the checkpoint too.
    await cut_tail(session_factory, entries[1])
    async with session_factory() as session:
        await export_evidence(session, tmp_path / "ev", signer)
    report = verify_export(tmp_path / "ev", checkpoints=read_checkpoints([tmp_path / "four.json"]))
    assert not report.ok and "entries were removed from the end" in report.problems[0]


# ------------------------------------------------------------------ keys


async def test_run_refuses_a_missing_key_once_the_ledger_has_entries(session_factory, tmp_path):
    path = tmp_path / "keys" / "warden-signing.key"
    first = await open_signer(session_factory, path, now=NOW)  # empty ledger: created
    await append_n(session_factory, first, 2)
    path.unlink()
    with pytest.raises(LedgerKeyError) as exc:
        await open_signer(session_factory, path, now=NOW)
    message = str(exc.value)
    assert f"ledger signing key {path} is missing" in message
    assert first.key_id in message and "unverifiable" in message
    assert "backup" in message and "rotate-key" in message
    assert not path.exists()  # nothing was created
    # A different key in its place is refused as well.
    Signer.from_file(path, create=True)
    with pytest.raises(LedgerKeyError, match=f"the ledger's active key is {first.key_id}"):
        await open_signer(session_factory, path, now=NOW)


async def test_open_signer_registers_the_key_of_an_existing_ledger(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    signer = Signer.from_file(path, create=True)
    await append_n(session_factory, signer, 3)  # a ledger from before keys were registered
    assert (await open_signer(session_factory, path, now=NOW)).key_id == signer.key_id
    async with session_factory() as session:
        (row,) = (await session.scalars(select(LedgerKey))).all()
    assert (row.key_id, row.after_entry_id, row.last_entry_id, row.retired_at) == (
        signer.key_id,
        None,
        None,
        None,
    )
    assert "PRIVATE" not in row.public_key


async def test_rotation_keeps_old_entries_verifiable_and_switches_signers(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    running = await open_signer(session_factory, path, now=NOW)  # the bot's signer
    old_key = running.public_key
    before = await append_n(session_factory, running, 3)
    rotation = await rotate_key(session_factory, path, now=NOW)
    assert rotation.old_key_id == before[0].key_id and rotation.new_key_id != rotation.old_key_id
    assert not path.with_name("k.pem.new").exists()
    assert Signer.from_file(path).key_id == rotation.new_key_id

    # The running bot still holds the old key; its next decision re-reads the file.
    after = await append_n(session_factory, running, 2, start=3)
    assert running.key_id == rotation.new_key_id
    assert {e.key_id for e in after} == {rotation.new_key_id}
    assert {e.key_id for e in before} == {rotation.old_key_id}

    # Either key alone is enough: the handover entry vouches both ways.
    for key in (old_key, running.public_key):
        report = await verify(session_factory, key)
        assert report.ok, report.problems
        assert report.entries == 6
    async with session_factory() as session:
        rows = {r.key_id: r for r in (await session.scalars(select(LedgerKey))).all()}
        handover = await session.get(LedgerEntry, rotation.entry_id)
    assert rows[rotation.old_key_id].last_entry_id == rotation.entry_id
    assert rows[rotation.new_key_id].after_entry_id == rotation.entry_id
    assert rows[rotation.new_key_id].retired_at is None
    assert handover.outcome == "key-rotated" and handover.key_id == rotation.old_key_id
    assert handover.proof["new_key_id"] == rotation.new_key_id

    # A checkpoint is signed with the new key and verifies with the old one trusted only.
    await checkpoint(session_factory, running, tmp_path / "cp.json")
    assert (await verify(session_factory, old_key, [tmp_path / "cp.json"])).ok


async def test_entry_signed_by_a_retired_key_fails(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    old = await open_signer(session_factory, path, now=NOW)
    old_copy = Signer(old._key)  # a copy of the old private key someone kept
    await append_n(session_factory, old, 2)
    rotation = await rotate_key(session_factory, path, now=NOW)
    # The append check refuses to sign with it ...
    with pytest.raises(LedgerKeyError, match="is not the ledger's active key"):
        await append_n(session_factory, old_copy, 1, start=2)
    # ... and an entry forced in with it anyway fails verification.
    async with session_factory() as session, session.begin():
        await session.execute(delete(LedgerKey))  # the attacker clears the index first
        forged = (await append_n_in(session, old_copy)).id
    report = await verify(session_factory, Signer.from_file(path).public_key)
    assert report.problems == [
        f"entry {forged}: signed by key {old_copy.key_id} outside its validity (it signs entries from the "
        f"first entry through entry {rotation.entry_id})"
    ]


async def append_n_in(session, signer):
    return await append_entry(
        session, signer, created_at=NOW, outcome="denied", rule="r", reason="x", proof={}, controls=[]
    )


async def test_lost_key_rotation_needs_the_new_key_from_the_operator(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    old = await open_signer(session_factory, path, now=NOW)
    await append_n(session_factory, old, 2)
    path.unlink()
    with pytest.raises(LedgerKeyError, match="--lost-key"):
        await rotate_key(session_factory, path, now=NOW)
    rotation = await rotate_key(session_factory, path, now=NOW, lost=True)
    new = await open_signer(session_factory, path, now=NOW)
    assert new.key_id == rotation.new_key_id
    await append_n(session_factory, new, 1, start=2)
    report = await verify(session_factory, [old.public_key, new.public_key])
    assert report.ok, report.problems
    assert any("reported lost" in w for w in report.warnings)
    # Knowing only the old key proves the old entries, not the new key's.
    report = await verify(session_factory, old.public_key)
    assert not report.ok and all(f"signed by key {new.key_id}" in p for p in report.problems)


# ------------------------------------------------------------------ exports


async def test_export_since_is_anchored_and_carries_every_key(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    signer = await open_signer(session_factory, path, now=NOW)
    entries = await append_n(session_factory, signer, 6)
    rotation = await rotate_key(session_factory, path, now=NOW)
    await append_n(session_factory, signer, 3, start=6)  # signer reloads the new key
    since = entries[4].created_at
    for fmt in ("jsonl", "csv"):
        out = tmp_path / fmt
        async with session_factory() as session:
            await export_evidence(session, out, signer, since=since, fmt=fmt)
        head = json.loads((out / "head.json").read_text())
        assert head["anchor_entry_id"] == entries[3].id and head["anchor_hash"] == entries[3].hash
        assert head["first_entry_id"] == entries[4].id and head["entries"] == 6
        assert {k["key_id"]: (k["after_entry_id"], k["last_entry_id"]) for k in head["keys"]} == {
            rotation.old_key_id: (None, rotation.entry_id),
            rotation.new_key_id: (rotation.entry_id, None),
        }
        assert entries[3].hash in (out / "README.txt").read_text()
        report = verify_export(out, signer.public_key_pem())
        assert report.ok, (fmt, report.problems)
        assert report.entries == 6
        assert any(f"starts after entry {entries[3].id}" in w for w in report.warnings)

    # Removing the first exported line is caught against the anchor.
    lines = (tmp_path / "jsonl" / "ledger.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "jsonl" / "ledger.jsonl").write_text("".join(lines[1:]))
    report = verify_export(tmp_path / "jsonl", signer.public_key_pem())
    assert any("does not match the export's anchor" in p for p in report.problems)


async def test_export_since_after_the_last_entry_is_empty_and_verifies(session_factory, tmp_path):
    signer = Signer.generate()
    entries = await append_n(session_factory, signer, 2)
    async with session_factory() as session:
        await export_evidence(session, tmp_path, signer, since=NOW + dt.timedelta(days=30))
    head = json.loads((tmp_path / "head.json").read_text())
    assert head["entries"] == 0 and head["anchor_hash"] == entries[-1].hash
    assert verify_export(tmp_path).ok
    assert run_recipe(tmp_path, signer).returncode == 0


def recipe_code() -> str:
    text = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
    section = text.split("## Verifying an export with the public key alone", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_recipe(directory: Path, signer: Signer) -> subprocess.CompletedProcess[str]:
    pem = directory.parent / f"{directory.name}-trusted.pem"
    pem.write_bytes(signer.public_key_pem())
    script = directory.parent / "verify_warden_export.py"
    script.write_text(recipe_code(), encoding="utf-8")
    # -I: isolated, so the recipe cannot lean on Warden's own modules.
    return subprocess.run(
        [sys.executable, "-I", str(script), str(directory), str(pem)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_documented_recipe_verifies_a_real_export(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    signer = await open_signer(session_factory, path, now=NOW)
    entries = await append_n(session_factory, signer, 5)
    await rotate_key(session_factory, path, now=NOW)
    await append_n(session_factory, signer, 2, start=5)
    for name, since in (("all", None), ("since", entries[2].created_at)):
        out = tmp_path / name
        async with session_factory() as session:
            await export_evidence(session, out, signer, since=since)
        result = run_recipe(out, signer)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("OK: ")
    # The recipe fails on an edited line, and on a key the auditor does not trust.
    lines = (tmp_path / "all" / "ledger.jsonl").read_text().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["reason"] = "nothing to see"
    lines[1] = json.dumps(edited) + "\n"
    (tmp_path / "all" / "ledger.jsonl").write_text("".join(lines))
    result = run_recipe(tmp_path / "all", signer)
    assert result.returncode == 1 and "line 2: hash does not match" in result.stdout
    result = run_recipe(tmp_path / "since", Signer.generate())
    assert result.returncode == 1 and "not signed by the key you trust" in result.stdout


async def test_hostile_export_lines_are_reported_by_line(session_factory, tmp_path):
    signer = Signer.generate()
    await append_n(session_factory, signer, 3)
    async with session_factory() as session:
        await export_evidence(session, tmp_path, signer)
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    second = json.loads(lines[1])
    second["id"] = "2"
    lines[1] = json.dumps(second)
    lines.insert(2, "not json at all")
    lines.insert(3, "[1, 2]")
    (tmp_path / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    report = verify_export(tmp_path)
    assert not report.ok
    assert report.problems[:3] == [
        'line 2: "id" must be an integer, not a string ("2")',
        "line 3: not valid JSON",
        "line 4: not a JSON object but a list",
    ]


async def test_signer_adopts_the_pending_key_of_a_rotation_not_yet_moved(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    running = await open_signer(session_factory, path, now=NOW)
    old_pem = path.read_bytes()
    await append_n(session_factory, running, 1)
    rotation = await rotate_key(session_factory, path, now=NOW)
    # The moment between the database commit and moving the new file into place.
    path.rename(path.with_name("k.pem.new"))
    path.write_bytes(old_pem)
    (entry,) = await append_n(session_factory, running, 1, start=1)
    assert entry.key_id == rotation.new_key_id == running.key_id
    # A stray key file that is not the active key is never adopted.
    path.with_name("k.pem.new").write_bytes(old_pem)
    assert not running.reload(accept=[rotation.new_key_id])


async def test_csv_export_keeps_non_ascii_text_verifiable(session_factory, tmp_path):
    signer = Signer.generate()
    async with session_factory() as session, session.begin():
        await append_entry(
            session,
            signer,
            created_at=NOW,
            outcome="denied",
            rule="scope:déploiement",
            reason='Refusé: «pas de raison», line\nbreak, "quotes", comma',
            proof={"note": "✓"},
            controls=["SOC2:CC6.2"],
            guild_id=1,
        )
    async with session_factory() as session:
        await export_evidence(session, tmp_path, signer, fmt="csv")
    assert "Refusé" in (tmp_path / "ledger.csv").read_text(encoding="utf-8")
    report = verify_export(tmp_path)
    assert report.ok, report.problems


async def test_export_line_signed_by_a_retired_key_fails(session_factory, tmp_path):
    path = tmp_path / "k.pem"
    signer = await open_signer(session_factory, path, now=NOW)
    old_copy = Signer(signer._key)
    await append_n(session_factory, signer, 2)
    await rotate_key(session_factory, path, now=NOW)
    after = await append_n(session_factory, signer, 2, start=2)
    async with session_factory() as session:
        await export_evidence(session, tmp_path / "ev", signer)
    lines = (tmp_path / "ev" / "ledger.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    last.update(key_id=old_copy.key_id, signature=old_copy.sign(last["hash"].encode("ascii")))
    lines[-1] = json.dumps(last)
    (tmp_path / "ev" / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    report = verify_export(tmp_path / "ev", signer.public_key_pem())
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        f"entry {after[-1].id}: signed by key {old_copy.key_id} outside its validity"
    )
