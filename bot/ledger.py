"""The signed, tamper-evident decision ledger.

Every decision is one row in ``ledger_entries``. An entry's hash is the SHA-256 of
its canonical bytes, which include the previous entry's hash, so editing, removing
or reordering an entry breaks the chain from that point; the hash is signed with an
Ed25519 key kept outside the database, so a database writer cannot forge a new
chain either. ``ledger_head`` names the tip, which makes deleting entries at the
end visible too.

Canonical bytes (also what an auditor recomputes from an export)::

    json.dumps({prev_hash, created_at, guild_id, outcome, rule, reason, proof,
                controls, actor_id, request_id, grant_id},
               sort_keys=True, separators=(",", ":"), ensure_ascii=True)

with ``created_at`` as ISO 8601 UTC with microseconds
(``2026-03-02T09:00:00.000000+00:00``). ``hash = sha256(canonical).hexdigest()``;
the signature is Ed25519 over the ASCII bytes of that hex hash, base64-encoded.
The row id is not hashed (sequences may leave gaps); order is the prev_hash link.

Beyond the chain (see docs/audit.md):

- *Checkpoints* (``write_checkpoint``): the entry count and head hash, signed, kept
  off-box; ``verify_chain(..., checkpoints=...)`` shows a tail cut off after one.
- *Key rotation* (``rotate_key``): a ``key-rotated`` entry signed by the old key names
  the new one (which signs the handover too); each key may sign only its own period.
  ``ledger_keys`` indexes the public keys and their ranges; ``append_entry`` refuses a
  retired key. ``open_signer`` is how a process gets its signer: it never creates a new
  key for a ledger that already has entries.
- *Exports* (``export_evidence``) from a date carry the anchor: the hash of the entry
  before the first exported one.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import LedgerEntry, LedgerHead, LedgerKey
from bot.startup import StartupError

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_ID = 1
PAGE_SIZE = 1000
MAX_PROBLEMS = 1000

# The fields the hash covers, in no particular order (the JSON keys are sorted).
CONTENT_FIELDS = (
    "prev_hash",
    "created_at",
    "guild_id",
    "outcome",
    "rule",
    "reason",
    "proof",
    "controls",
    "actor_id",
    "request_id",
    "grant_id",
)
# What an exported line carries: the content plus where it sits and who signed it.
EXPORT_FIELDS = ("id", *CONTENT_FIELDS, "hash", "signature", "key_id")

ROTATION_OUTCOME = "key-rotated"
ROTATION_RULE = "warden audit rotate-key"

LEDGER_FILE = "ledger.jsonl"
LEDGER_CSV_FILE = "ledger.csv"
PUBLIC_KEY_FILE = "public_key.pem"
HEAD_FILE = "head.json"
README_FILE = "README.txt"


# --------------------------------------------------------------------------- keys


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of the SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Signer:
    """An Ed25519 signing key. Its repr and str name only the key id, never the key."""

    __slots__ = ("_key", "key_id", "path", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.key_id: str = key_id_for(self.public_key)
        # The file it came from: re-read when another process rotated the key (``reload``).
        self.path = path

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], create: bool = False) -> Signer:
        """Load a PEM (PKCS#8, unencrypted) key; with ``create``, make one if the file is missing.

        A new file is written with mode 0600 (and its directory created 0700).
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"ledger signing key not found: {path}")
            signer = cls.generate()
            _write_private_key(path, signer)
            log.info("created ledger signing key %s (key id %s)", path, signer.key_id)
            signer.path = path
            return signer
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("ledger signing key %s is readable by others (mode %o); chmod 600 it", path, mode)
        return cls(_read_private_key(path), path)

    def reload(self, accept: Iterable[str] | None = None) -> bool:
        """Re-read the key file; whether the key changed (it was rotated by another process).

        With ``accept``, take the new key only if its id is among them; the pending
        ``<file>.new`` of a rotation that has committed but not yet moved its file is
        tried too.
        """
        if self.path is None:
            return False
        wanted = None if accept is None else set(accept)
        for candidate in (self.path, self.path.with_name(self.path.name + ".new")):
            try:
                key = _read_private_key(candidate)
            except (OSError, ValueError, TypeError):
                continue
            public = key.public_key()
            new_id = key_id_for(public)
            if new_id == self.key_id or (wanted is not None and new_id not in wanted):
                continue
            old = self.key_id
            self._key, self.public_key, self.key_id = key, public, new_id
            log.info(
                "ledger signing key %s changed from key id %s to %s; signing with the new key",
                candidate,
                old,
                new_id,
            )
            return True
        return False

    def _private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._key.sign(data)).decode("ascii")

    def public_key_pem(self) -> bytes:
        return public_key_pem(self.public_key)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # no pickling a private key into a cache or a log by accident
        raise TypeError("Signer cannot be pickled")


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def _write_private_key(path: Path, signer: Signer) -> None:
    """Write ``signer``'s key to a new file, mode 0600 (refuses to overwrite)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signer._private_pem())
        fh.flush()
        os.fsync(fh.fileno())


def verify_signature(public_key: Ed25519PublicKey, entry_hash: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s signature over the ASCII hex hash."""
    return _verify_bytes(public_key, entry_hash.encode("ascii", "replace"), signature)


def _verify_bytes(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# ---------------------------------------------------------------- canonical form


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values, so what is stored is exactly what was hashed.

    Datetimes become ISO 8601 UTC strings, enums their value, tuples/sets lists,
    mapping keys strings; ints stay ints (JSON has no size limit; parse with an
    arbitrary-precision reader).
    """
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:  # the common case, first
        return obj
    if kind is dict:
        return {k if type(k) is str else str(jsonable(k)): jsonable(v) for k, v in obj.items()}
    if kind is list:
        return [jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else str(obj)
    if isinstance(obj, dt.datetime):
        if obj.tzinfo is None:
            raise ValueError("naive datetime in a ledger entry; use the injected clock")
        return iso_utc(obj)
    if isinstance(obj, dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    if isinstance(obj, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        items = [jsonable(v) for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    raise TypeError(f"cannot put a {type(obj).__name__} in a ledger entry")


def iso_utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


def dumps_canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The hashed bytes of an entry given as a mapping (a row, or a parsed export line)."""
    content = {name: record[name] for name in CONTENT_FIELDS}
    created = content["created_at"]
    if isinstance(created, dt.datetime):
        content["created_at"] = iso_utc(created)
    return dumps_canonical(jsonable(content))


def entry_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def _entry_record(entry: LedgerEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in EXPORT_FIELDS}


# ---------------------------------------------------------------------- append


#: ``session.info`` key: the head this transaction has locked, and the newest entry appended.
_HEAD_HELD = "warden_ledger_head_held"


@dataclasses.dataclass
class _HeldHead:
    """Many entries in one transaction (an audit-log page, a raid) lock and read the head once and
    write it once, at commit: the lock is held until then anyway, and a key rotation waits for it."""

    txn: Any
    key_id: str
    head: LedgerHead
    last_entry_id: int | None
    last_hash: str
    assigned: bool = False  # an entry got its id here, not from the database

    def write(self) -> None:
        self.head.last_entry_id = self.last_entry_id
        self.head.last_hash = self.last_hash


def _write_held_head(session: Any) -> None:
    held = session.info.pop(_HEAD_HELD, None)
    if not isinstance(held, _HeldHead):
        return
    held.write()
    if held.assigned and session.get_bind().dialect.name == "postgresql":
        # Ids given under the head lock did not come from the sequence: move it past them.
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'), "
                "GREATEST(:last, nextval(pg_get_serial_sequence('ledger_entries', 'id'))))"
            ),
            {"last": held.last_entry_id},
        )


async def append_entry(
    session: AsyncSession,
    signer: Signer,
    *,
    created_at: dt.datetime,
    outcome: str,
    rule: str,
    reason: str,
    proof: Mapping[str, Any],
    controls: Iterable[str],
    guild_id: int | None = None,
    actor_id: int | None = None,
    request_id: int | None = None,
    grant_id: int | None = None,
) -> LedgerEntry:
    """Append one signed entry in the caller's transaction (flushes, never commits).

    The head row is locked (``SELECT … FOR UPDATE``) until the caller commits, so
    two processes appending at once queue up instead of forking the chain. On
    SQLite the lock is a no-op; SQLite allows one writer at a time anyway.
    """
    if created_at.tzinfo is None:
        raise ValueError("naive created_at; use the injected clock")
    txn = session.get_transaction()
    held = session.info.get(_HEAD_HELD)
    if not (isinstance(held, _HeldHead) and held.txn is txn and held.key_id == signer.key_id):
        if isinstance(held, _HeldHead) and held.txn is txn:
            held.write()  # another key in the same transaction: the head must be current first
        head = await _lock_head(session)
        await _ensure_active_key(session, signer)
        held = _HeldHead(txn, signer.key_id, head, head.last_entry_id, head.last_hash)
        session.info[_HEAD_HELD] = held
        if not sa_event.contains(session.sync_session, "before_commit", _write_held_head):
            sa_event.listen(session.sync_session, "before_commit", _write_held_head)

    content: dict[str, Any] = {  # CONTENT_FIELDS: what verify_chain hashes again
        "prev_hash": held.last_hash,
        "created_at": created_at.astimezone(dt.UTC),
        "guild_id": guild_id,
        "outcome": str(outcome),
        "rule": rule,
        "reason": reason,
        "proof": jsonable(dict(proof)),
        "controls": [str(c) for c in controls],
        "actor_id": actor_id,
        "request_id": request_id,
        "grant_id": grant_id,
    }
    # Every content field is plain JSON but the time (the proof just went through jsonable):
    # hash it as it is, without walking the proof again or reading it back from the ORM object.
    digest = hashlib.sha256(
        dumps_canonical(content | {"created_at": iso_utc(content["created_at"])})
    ).hexdigest()
    entry = LedgerEntry(
        **content, hash=digest, signature=signer.sign(digest.encode("ascii")), key_id=signer.key_id
    )
    if held.last_entry_id is not None and held.last_entry_id >= 1:
        # Under the head lock every entry's id is at most the head's: the next one is free. Given
        # here, the entry needs no round trip of its own; the transaction's next flush inserts them
        # all together.
        entry.id = held.last_entry_id + 1
        held.assigned = True
        session.add(entry)
    else:
        session.add(entry)
        await session.flush()
    held.last_entry_id, held.last_hash = entry.id, entry.hash
    return entry


# ------------------------------------------------------------ keys in the ledger


class LedgerKeyError(StartupError):
    """The signing key does not fit the ledger (missing, replaced, or retired): nothing is signed."""


async def _active_key_ids(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(LedgerKey.key_id).where(LedgerKey.retired_at.is_(None)))).all())


async def _ensure_active_key(session: AsyncSession, signer: Signer) -> None:
    """Refuse to sign with a key that is not the ledger's active one (caller holds the head lock).

    A process still holding a key rotated away by ``warden audit rotate-key`` re-reads its
    key file and carries on with the new key. A ledger with no registered key (tests, or a
    ledger from before key registration) accepts any key: ``open_signer`` registers one.
    """
    active = await _active_key_ids(session)
    if not active or signer.key_id in active:
        return
    if signer.reload(accept=active):
        return
    raise LedgerKeyError(
        f"ledger signing key {signer.key_id}"
        + (f" ({signer.path})" if signer.path else "")
        + f" is not the ledger's active key {active[0]}: it was rotated or replaced. Point "
        "WARDEN_SIGNING_KEY at the active key (the file `warden audit rotate-key` wrote) and restart"
    )


async def _newest_entry(session: AsyncSession) -> tuple[int, str] | None:
    row = (
        await session.execute(
            select(LedgerEntry.id, LedgerEntry.key_id).order_by(LedgerEntry.id.desc()).limit(1)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def _register_key(session: AsyncSession, signer: Signer, now: dt.datetime) -> LedgerKey:
    """Record the first key of a ledger: valid for every entry not signed by another key."""
    after = await session.scalar(select(func.max(LedgerEntry.id)).where(LedgerEntry.key_id != signer.key_id))
    row = LedgerKey(
        key_id=signer.key_id,
        public_key=signer.public_key_pem().decode("ascii"),
        activated_at=now,
        after_entry_id=after,
    )
    session.add(row)
    await session.flush()
    return row


async def open_signer(
    session_factory: async_sessionmaker[AsyncSession], path: str | os.PathLike[str], *, now: dt.datetime
) -> Signer:
    """The signer ``warden run`` uses: load its key, checked against the ledger, and register it.

    A new key is created only while the ledger is empty. When the ledger already has
    entries and the key file is missing, or holds a key other than the ledger's active
    one, this raises ``LedgerKeyError`` instead: a fresh key would sign entries nobody
    can tie to the old ones.
    """
    path = Path(path)
    async with session_factory() as session, session.begin():
        await _lock_head(session)
        newest = await _newest_entry(session)
        active = await _active_key_ids(session)
        expected = active[0] if active else (newest[1] if newest else None)
        if not path.exists() and newest is not None:
            raise LedgerKeyError(
                f"ledger signing key {path} is missing, but the ledger already has entries signed with "
                f"key {expected}. Creating a new key would leave them unverifiable: restore the key file "
                "from your backup (or point WARDEN_SIGNING_KEY at it); if it is lost for good, run "
                "`warden audit rotate-key --lost-key` to start a new key that says so in the ledger"
            )
        try:
            signer = Signer.from_file(path, create=newest is None)
        except (ValueError, TypeError, OSError) as exc:
            raise LedgerKeyError(f"ledger signing key {path} cannot be used: {exc}") from None
        if expected is not None and signer.key_id != expected:
            raise LedgerKeyError(
                f"ledger signing key {path} holds key {signer.key_id}, but the ledger's active key is "
                f"{expected}: entries signed with it would not verify. Restore the right key file from "
                "your backup, or change keys with `warden audit rotate-key`"
            )
        if not active:
            await _register_key(session, signer, now)
    return signer


async def _lock_head(session: AsyncSession) -> LedgerHead:
    head = (
        await session.execute(
            select(LedgerHead)
            .where(LedgerHead.id == HEAD_ID)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if head is None:
        raise RuntimeError("ledger_head row is missing; run `warden migrate`")
    return head


@dataclasses.dataclass(frozen=True)
class Rotation:
    entry_id: int
    old_key_id: str | None
    new_key_id: str
    lost: bool


def _rotation_statement(old_key_id: str | None, new_key_id: str, new_public_key: str) -> bytes:
    """What the new key signs at a rotation, so trusting either key vouches for the other."""
    return dumps_canonical(
        {"old_key_id": old_key_id, "new_key_id": new_key_id, "new_public_key": new_public_key}
    )


async def rotate_key(
    session_factory: async_sessionmaker[AsyncSession],
    path: str | os.PathLike[str],
    *,
    now: dt.datetime,
    lost: bool = False,
) -> Rotation:
    """Make a new signing key the active one; the old key's public half stays for verification.

    The handover is itself a ledger entry (``key-rotated``) signed by the old key and
    naming the new public key, which also signs the handover; so a verifier who trusts
    either key can trust the other, and entries after it must carry the new key.
    ``lost``: the old private key is gone, so the entry is signed by the new key alone
    (verifiers must then obtain the new public key independently).

    Files: the new key is written beside ``path`` first, then moved over it once the
    database has committed. The old private key is not kept.
    """
    path = Path(path)
    pending = path.with_name(path.name + ".new")
    new = Signer.generate()
    old: Signer | None = None
    if not lost:
        if not path.exists():
            raise LedgerKeyError(
                f"ledger signing key {path} not found: rotate-key signs the handover with the current "
                "key. Restore it from your backup, or use --lost-key if it is gone for good"
            )
        old = Signer.from_file(path)
    if pending.exists():
        pending.unlink()  # a rotation that died before committing
    _write_private_key(pending, new)
    try:
        async with session_factory() as session, session.begin():
            head = await _lock_head(session)
            active = await _active_key_ids(session)
            newest = await _newest_entry(session)
            current = active[0] if active else (newest[1] if newest else None)
            if old is not None and current is not None and old.key_id != current:
                raise LedgerKeyError(
                    f"ledger signing key {path} holds key {old.key_id}, but the ledger's active key is "
                    f"{current}: rotate from the active key"
                )
            if old is not None and not active:
                await _register_key(session, old, now)
            old_id = old.key_id if old is not None else current
            new_pem = new.public_key_pem().decode("ascii")
            proof: dict[str, Any] = {
                "old_key_id": old_id,
                "old_public_key": old.public_key_pem().decode("ascii") if old is not None else None,
                "new_key_id": new.key_id,
                "new_public_key": new_pem,
                "new_key_signature": new.sign(_rotation_statement(old_id, new.key_id, new_pem)),
                "previous_key_lost": lost,
                # With a lost key the handover entry is the new key's; the old one's last is before it.
                "old_key_last_entry_id": head.last_entry_id if lost else None,
            }
            reason = (
                f"Signing key {old_id} was reported lost; key {new.key_id} signs from here on."
                if lost
                else f"Signing key {old_id} handed over to key {new.key_id}."
            )
            # Retire first so the append's active-key check accepts the signer that signs the handover.
            before = head.last_entry_id
            signing = old if old is not None else new
            await session.execute(
                update(LedgerKey).where(LedgerKey.retired_at.is_(None)).values(retired_at=now)
            )
            entry = await append_entry(
                session,
                signing,
                created_at=now,
                outcome=ROTATION_OUTCOME,
                rule=ROTATION_RULE,
                reason=reason,
                proof=proof,
                controls=[],
            )
            last_old = before if lost else entry.id
            if old_id is not None:
                await session.execute(
                    update(LedgerKey).where(LedgerKey.key_id == old_id).values(last_entry_id=last_old)
                )
            session.add(
                LedgerKey(
                    key_id=new.key_id,
                    public_key=new_pem,
                    activated_at=now,
                    after_entry_id=last_old,
                )
            )
            await session.flush()
            rotation = Rotation(entry.id, old_id, new.key_id, lost)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    os.replace(pending, path)
    return rotation


# ---------------------------------------------------------------------- verify


@dataclasses.dataclass
class VerifyReport:
    ok: bool
    entries: int
    problems: list[str] = dataclasses.field(default_factory=list)
    # Things that do not make the chain invalid but limit what was proven.
    warnings: list[str] = dataclasses.field(default_factory=list)
    last_entry_id: int | None = None
    last_hash: str = GENESIS_HASH
    checkpoints: int = 0  # checkpoints compared (signature valid)


@dataclasses.dataclass
class KeyInfo:
    """A public key a verifier trusts, and (when known) the entries it may sign."""

    key_id: str
    public_key: Ed25519PublicKey
    after_entry_id: int | None = None
    last_entry_id: int | None = None
    # False: a key the verifier was given with no known range (valid for any entry).
    ranged: bool = False

    def covers(self, entry_id: int) -> bool:
        if not self.ranged:
            return True
        return (self.after_entry_id is None or entry_id > self.after_entry_id) and (
            self.last_entry_id is None or entry_id <= self.last_entry_id
        )

    def range_text(self) -> str:
        start = (
            "from the first entry" if self.after_entry_id is None else f"after entry {self.after_entry_id}"
        )
        end = "onwards" if self.last_entry_id is None else f"through entry {self.last_entry_id}"
        return f"it signs entries {start} {end}"


PublicKeys = Ed25519PublicKey | Iterable[Ed25519PublicKey]


def _keyring(public_key: PublicKeys) -> dict[str, KeyInfo]:
    keys = [public_key] if isinstance(public_key, Ed25519PublicKey) else list(public_key)
    return {key_id_for(k): KeyInfo(key_id_for(k), k) for k in keys}


def _pem_key(pem: Any) -> Ed25519PublicKey | None:
    if not isinstance(pem, str):
        return None
    try:
        return load_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeError):
        return None


def _apply_rotations(
    keys: dict[str, KeyInfo], rotations: Sequence[Mapping[str, Any]], warnings: list[str]
) -> None:
    """Extend ``keys`` (trusted) through the ledger's own ``key-rotated`` entries, with ranges.

    A rotation signed by a trusted old key makes the new key trusted; the new key's
    signature over the handover makes the old key trusted. Entries before a handover
    belong to the old key, entries after it to the new one.
    """
    parsed = []
    for record in rotations:
        proof = record.get("proof")
        if not isinstance(proof, Mapping) or not isinstance(proof.get("new_key_id"), str):
            continue
        new_key = _pem_key(proof.get("new_public_key"))
        if new_key is None or key_id_for(new_key) != proof["new_key_id"]:
            continue
        old_key = _pem_key(proof.get("old_public_key"))
        old_id = proof.get("old_key_id") if isinstance(proof.get("old_key_id"), str) else None
        if old_key is not None and key_id_for(old_key) != old_id:
            old_key = None
        lost = proof.get("previous_key_lost") is True
        old_last = proof.get("old_key_last_entry_id") if lost else record["id"]
        parsed.append((record, old_id, old_key, proof["new_key_id"], new_key, lost, old_last, proof))
    if not parsed:
        return
    trusted = {kid for kid in keys}
    changed = True
    while changed:
        changed = False
        for record, old_id, old_key, new_id, new_key, lost, _, proof in parsed:
            if (
                old_id in trusted
                and new_id not in trusted
                and not lost
                and old_key is not None
                and record.get("key_id") == old_id
                and verify_signature(old_key, str(record.get("hash")), str(record.get("signature")))
            ):
                trusted.add(new_id)
                keys[new_id] = KeyInfo(new_id, new_key)
                changed = True
            if new_id in trusted and old_id is not None and old_id not in trusted and old_key is not None:
                statement = _rotation_statement(old_id, new_id, str(proof.get("new_public_key")))
                if _verify_bytes(new_key, statement, str(proof.get("new_key_signature"))):
                    trusted.add(old_id)
                    keys[old_id] = KeyInfo(old_id, old_key)
                    changed = True
    # Ranges, in chain order: each handover closes the old key's range and opens the new one's.
    for record, old_id, _, new_id, _, lost, old_last, _ in parsed:
        if old_id in keys:
            info = keys[old_id]
            info.ranged = True
            info.last_entry_id = old_last if isinstance(old_last, int) else record["id"]
        if new_id in keys:
            info = keys[new_id]
            info.ranged = True
            info.after_entry_id = old_last if isinstance(old_last, int) else record["id"]
            info.last_entry_id = None
        if lost and new_id in keys:
            warnings.append(
                f"entry {record['id']}: key {new_id} replaced key {old_id} without its signature (the old "
                f"key was reported lost); key {new_id} is trusted only because you supplied it"
            )


class _ChainChecker:
    """Checks entries one at a time, in id order; shared by the database and export checks."""

    def __init__(
        self,
        public_key: PublicKeys | Mapping[str, KeyInfo],
        max_problems: int = MAX_PROBLEMS,
        start_hash: str = GENESIS_HASH,
    ) -> None:
        if isinstance(public_key, Mapping):
            self.keys: dict[str, KeyInfo] = dict(public_key)
        else:
            self.keys = _keyring(public_key)
        self.max_problems = max_problems
        self.problems: list[str] = []
        self.suppressed = 0
        self.entries = 0
        self.prev_id: int | None = None
        self.prev_hash = start_hash
        self.start_hash = start_hash
        self._checkpoints: dict[int, list[Checkpoint]] = {}
        self._matched: set[int] = set()
        self.checkpoints_checked = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(text)
        else:
            self.suppressed += 1

    def expect(self, checkpoints: Iterable[Checkpoint]) -> None:
        for cp in checkpoints:
            self.checkpoints_checked += 1
            if cp.last_entry_id is not None:
                self._checkpoints.setdefault(cp.last_entry_id, []).append(cp)

    def check(self, record: Mapping[str, Any]) -> None:
        entry_id = record["id"]
        self.entries += 1
        if self.prev_id is not None and entry_id <= self.prev_id:
            self.problem(f"entry {entry_id}: out of order after entry {self.prev_id}")
        try:
            computed: str | None = entry_hash(record)
        except (TypeError, ValueError, RecursionError) as exc:
            self.problem(f"entry {entry_id}: contents cannot be read ({str(exc)[:200]})")
            computed = None
        if computed is not None and computed != record["hash"]:
            self.problem(f"entry {entry_id}: hash does not match its contents (edited?)")
        if record["prev_hash"] != self.prev_hash:
            if self.entries == 1 and self.start_hash != GENESIS_HASH:
                self.problem(
                    f"entry {entry_id}: previous hash does not match the export's anchor "
                    f"{self.start_hash[:16]}… (entries removed at the start?)"
                )
            elif self.prev_id is None:
                self.problem(
                    f"entry {entry_id}: previous hash does not match the start of the chain "
                    "(earlier entries removed?)"
                )
            else:
                self.problem(
                    f"entry {entry_id}: previous hash does not match entry {self.prev_id} "
                    "(entry removed or reordered?)"
                )
        key = self.keys.get(record["key_id"])
        if key is None:
            self.problem(
                f"entry {entry_id}: signed by key {record['key_id']}, which is not among the keys given "
                f"({', '.join(sorted(self.keys)) or 'none'})"
            )
        elif not verify_signature(key.public_key, str(record["hash"]), str(record["signature"])):
            self.problem(f"entry {entry_id}: signature invalid for key {record['key_id']}")
        elif not key.covers(entry_id):
            self.problem(
                f"entry {entry_id}: signed by key {record['key_id']} outside its validity ({key.range_text()})"
            )
        for cp in self._checkpoints.get(entry_id, ()):
            self._matched.add(id(cp))
            if record["hash"] != cp.head_hash:
                self.problem(
                    f"checkpoint {cp.source} ({cp.created_at}): entry {entry_id} has hash "
                    f"{str(record['hash'])[:16]}…, but the checkpoint recorded {cp.head_hash[:16]}… "
                    "(the ledger was rewritten from there?)"
                )
            elif self.start_hash == GENESIS_HASH and self.entries != cp.entries:
                self.problem(
                    f"checkpoint {cp.source} ({cp.created_at}): it counted {cp.entries} entries up to entry "
                    f"{entry_id}, the ledger has {self.entries} (entries removed before it?)"
                )
        self.prev_id = entry_id
        self.prev_hash = record["hash"]

    def finish_checkpoints(self, first_entry_id: int | None = None) -> list[str]:
        """Problems for checkpoints whose entry never came; returns warnings for ones out of reach."""
        warnings = []
        for entry_id, cps in sorted(self._checkpoints.items()):
            for cp in cps:
                if id(cp) in self._matched:
                    continue
                if first_entry_id is not None and entry_id < first_entry_id:
                    warnings.append(
                        f"checkpoint {cp.source} records entry {entry_id}, before this export's first entry "
                        f"{first_entry_id}: not compared"
                    )
                elif self.prev_id is None or self.prev_id < entry_id:
                    ends = "has no entries" if self.prev_id is None else f"ends at entry {self.prev_id}"
                    self.problem(
                        f"checkpoint {cp.source} ({cp.created_at}) records {cp.entries} entries up to entry "
                        f"{entry_id}, but the ledger {ends} with {self.entries} entries: "
                        "entries were removed from the end"
                    )
                else:
                    self.problem(
                        f"checkpoint {cp.source} ({cp.created_at}) records entry {entry_id} (hash "
                        f"{cp.head_hash[:16]}…), which is missing from the ledger (removed or renumbered?)"
                    )
        return warnings

    def check_head(self, head_entry_id: Any, head_hash: Any, where: str = "head") -> None:
        if head_entry_id != self.prev_id:
            if self.prev_id is None:
                self.problem(f"{where} names entry {head_entry_id} but there are no entries (all deleted?)")
            elif not isinstance(head_entry_id, int) or head_entry_id > self.prev_id:
                self.problem(
                    f"{where} names entry {head_entry_id} but the last entry is {self.prev_id} "
                    "(entries deleted at the end?)"
                )
            else:
                self.problem(
                    f"{where} names entry {head_entry_id} but the last entry is {self.prev_id} "
                    "(entries added without moving the head?)"
                )
        elif head_hash != self.prev_hash:
            self.problem(f"{where} hash does not match entry {self.prev_id} (last entry replaced?)")

    def report(self, warnings: list[str] | None = None) -> VerifyReport:
        problems = list(self.problems)
        if self.suppressed:
            problems.append(f"… and {self.suppressed} more problems")
        return VerifyReport(
            ok=not problems,
            entries=self.entries,
            problems=problems,
            warnings=warnings or [],
            last_entry_id=self.prev_id,
            last_hash=self.prev_hash,
            checkpoints=self.checkpoints_checked,
        )


async def iter_entries(
    session: AsyncSession, page_size: int | None = None, *, from_id: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """Entries with id >= ``from_id`` in id order as plain dicts, a page at a time (keyset paging)."""
    table = LedgerEntry.__table__
    size = page_size or PAGE_SIZE
    last_id = from_id - 1
    while True:
        rows = (
            (
                await session.execute(
                    select(*table.c).where(table.c.id > last_id).order_by(table.c.id).limit(size)
                )
            )
            .mappings()
            .all()
        )
        for row in rows:
            yield dict(row)
        if len(rows) < size:
            return
        last_id = rows[-1]["id"]


async def _read_head(session: AsyncSession) -> tuple[int | None, str] | None:
    table = LedgerHead.__table__
    row = (
        await session.execute(select(table.c.last_entry_id, table.c.last_hash).where(table.c.id == HEAD_ID))
    ).first()
    return None if row is None else (row[0], row[1])


async def _rotation_records(session: AsyncSession) -> list[dict[str, Any]]:
    table = LedgerEntry.__table__
    rows = await session.execute(
        select(*table.c).where(table.c.outcome == ROTATION_OUTCOME).order_by(table.c.id)
    )
    return [dict(r) for r in rows.mappings().all()]


async def verify_chain(
    session: AsyncSession,
    public_key: PublicKeys,
    *,
    max_problems: int = MAX_PROBLEMS,
    checkpoints: Iterable[CheckpointFile] = (),
) -> VerifyReport:
    """Check every entry's hash, link and signature, and the head. Read-only.

    ``public_key`` may be one key or several. Keys handed over by ``key-rotated``
    entries are followed from there, and each key may sign only the entries of its
    own period. ``checkpoints`` (read with ``read_checkpoints``): the ledger must
    reach each one's entry with the same hash.
    """
    warnings: list[str] = []
    keys = _keyring(public_key)
    _apply_rotations(keys, await _rotation_records(session), warnings)
    checker = _ChainChecker(keys, max_problems)
    checker.expect(_trusted_checkpoints(checkpoints, keys, checker))
    async for record in iter_entries(session):
        checker.check(record)
    head = await _read_head(session)
    if head is None:
        checker.problem("the ledger_head row is missing")
    else:
        checker.check_head(*head)
    warnings += checker.finish_checkpoints()
    return checker.report(warnings)


# ------------------------------------------------------------------ checkpoints

CHECKPOINT_FORMAT = "warden-ledger-checkpoint/1"
CHECKPOINT_FIELDS = ("format", "entries", "last_entry_id", "head_hash", "created_at", "key_id")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The ledger's length and head, signed: proof outside the database of how far it reached.

    A hash chain cannot show its own tail cut off; a checkpoint kept off-box can.
    """

    entries: int
    last_entry_id: int | None
    head_hash: str
    created_at: str
    key_id: str
    signature: str
    source: str = ""  # the file it was read from or written to

    def document(self) -> dict[str, Any]:
        """The signed fields (the signature covers their canonical JSON)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "entries": self.entries,
            "last_entry_id": self.last_entry_id,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
            "key_id": self.key_id,
        }

    def narrative(self) -> str:
        """One line for the governance channel."""
        where = f"entry {self.last_entry_id}" if self.last_entry_id is not None else "no entries yet"
        return (
            f"Ledger checkpoint: {self.entries} entries, head {where} (hash {self.head_hash[:16]}…), "
            f"signed with key {self.key_id} at {self.created_at}."
        )


# A checkpoint file as read: the checkpoint, or the problem that makes it unusable.
CheckpointFile = Checkpoint | str


async def write_checkpoint(
    session: AsyncSession, signer: Signer, path: str | os.PathLike[str], *, now: dt.datetime
) -> Checkpoint:
    """Sign the ledger's current length and head and write it to ``path``; commits nothing.

    ``path`` may be a directory (a new ``checkpoint-<time>-<entries>.json`` in it each
    time, for a schedule) or a file (replaced atomically). Ship the files off-box:
    ``warden audit verify --checkpoint`` then shows any entry removed since.
    Call in its own transaction; the head is locked while counting so the count and
    head agree. Returns the checkpoint (``.narrative()`` for the governance channel).
    """
    head = await _lock_head(session)
    await _ensure_active_key(session, signer)
    count = int(await session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
    unsigned = Checkpoint(
        entries=count,
        last_entry_id=head.last_entry_id,
        head_hash=head.last_hash,
        created_at=iso_utc(now),
        key_id=signer.key_id,
        signature="",
    )
    signature = signer.sign(dumps_canonical(unsigned.document()))
    return _write_checkpoint_file(dataclasses.replace(unsigned, signature=signature), Path(path), now)


async def checkpoint_to(
    session_factory: async_sessionmaker[AsyncSession],
    signer: Signer,
    path: str | os.PathLike[str],
    *,
    now: dt.datetime,
) -> Checkpoint:
    """``write_checkpoint`` in a transaction of its own: what a scheduled job calls.

    Post ``checkpoint.narrative()`` to the governance channel, and ship the file off-box.
    """
    async with session_factory() as session, session.begin():
        return await write_checkpoint(session, signer, path, now=now)


def _write_checkpoint_file(checkpoint: Checkpoint, target: Path, now: dt.datetime) -> Checkpoint:
    if target.is_dir():
        stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = target / f"checkpoint-{stamp}-{checkpoint.entries}.json"
    checkpoint = dataclasses.replace(checkpoint, source=str(target))
    doc = {**checkpoint.document(), "signature": checkpoint.signature}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(json.dumps(doc, indent=2, sort_keys=True).encode("ascii") + b"\n")
    os.replace(tmp, target)
    return checkpoint


def read_checkpoints(paths: Iterable[str | os.PathLike[str]]) -> list[CheckpointFile]:
    """Checkpoint files (a directory stands for every ``*.json`` in it), parsed but not yet trusted.

    Unreadable or malformed files come back as a sentence saying what is wrong.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    out: list[CheckpointFile] = []
    for path in files:
        try:
            doc = json.loads(path.read_bytes())
        except OSError as exc:
            out.append(f"checkpoint {path}: cannot be read ({exc.strerror or exc})")
            continue
        except (ValueError, RecursionError):
            out.append(f"checkpoint {path}: not valid JSON")
            continue
        out.append(_parse_checkpoint(doc, str(path)))
    return out


def _parse_checkpoint(doc: Any, source: str) -> CheckpointFile:
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        return f'checkpoint {source}: not a Warden ledger checkpoint (no "format": "{CHECKPOINT_FORMAT}")'
    types: dict[str, Any] = {
        "entries": int,
        "last_entry_id": (int, type(None)),
        "head_hash": str,
        "created_at": str,
        "key_id": str,
        "signature": str,
    }
    for name, kind in types.items():
        value = doc.get(name)
        if name not in doc or isinstance(value, bool) or not isinstance(value, kind):
            return f'checkpoint {source}: "{name}" is missing or not {_type_name(kind)}'
    return Checkpoint(
        entries=doc["entries"],
        last_entry_id=doc["last_entry_id"],
        head_hash=doc["head_hash"],
        created_at=doc["created_at"],
        key_id=doc["key_id"],
        signature=doc["signature"],
        source=source,
    )


def _trusted_checkpoints(
    files: Iterable[CheckpointFile], keys: Mapping[str, KeyInfo], checker: _ChainChecker
) -> list[Checkpoint]:
    """The checkpoints whose signature verifies with a trusted key; problems for the rest."""
    good = []
    for cp in files:
        if isinstance(cp, str):
            checker.problem(cp)
            continue
        key = keys.get(cp.key_id)
        if key is None:
            checker.problem(
                f"checkpoint {cp.source}: signed by key {cp.key_id}, which is not among the keys given"
            )
        elif not _verify_bytes(key.public_key, dumps_canonical(cp.document()), cp.signature):
            checker.problem(
                f"checkpoint {cp.source}: signature invalid for key {cp.key_id} (forged or edited); "
                "it proves nothing"
            )
        elif cp.last_entry_id is not None and not key.covers(cp.last_entry_id):
            checker.problem(
                f"checkpoint {cp.source}: signed by key {cp.key_id} for entry {cp.last_entry_id}, outside "
                f"that key's validity ({key.range_text()})"
            )
        else:
            good.append(cp)
    return good


# ---------------------------------------------------------------------- export

README_TEXT = """\
Warden decision ledger — evidence export
=======================================

Files
  {ledger_file}    one ledger entry per line, in order{format_note}
  public_key.pem  the Ed25519 public key the export is signed with (the active key)
  head.json       the export's first and last entry, its anchor and every public key
                  with the entries it signs ({head_signed} by the active key)

{scope}

What is proven
  Each entry's hash is SHA-256 over its canonical bytes, which include the
  previous entry's hash; each hash is signed. Editing, removing or reordering
  an entry breaks the chain, and nobody without the private key can re-sign it.
  head.json names the last entry, so removing lines from the end shows too.
  Removal of the ledger's newest entries before the export is shown by checkpoints
  kept off-box: warden audit verify --export <dir> --checkpoint <files>.

Check that the key is Warden's
  Key id (first 16 hex of SHA-256 of the raw 32-byte public key): {key_id}
  Compare it with the key id in the governance channel's narratives or the one
  the operator gave you by another channel before trusting this export.

Verify
  With Warden installed:   warden audit verify --export <this directory> --public-key <key you trust>
  With Python and the `cryptography` package alone: the recipe in Warden's docs/audit.md.

  By hand, for every line in order:
    1. content = the line's object with only these keys:
       prev_hash, created_at, guild_id, outcome, rule, reason, proof,
       controls, actor_id, request_id, grant_id
    2. canonical = JSON of content with keys sorted at every level, separators
       "," and ":" and no whitespace, non-ASCII escaped as \\uXXXX
       (Python: json.dumps(content, sort_keys=True, separators=(",", ":"),
       ensure_ascii=True)), encoded as ASCII
    3. sha256(canonical) as lowercase hex must equal "hash"
    4. "prev_hash" must equal the previous line's "hash" (head.json's
       anchor_hash for the first line)
    5. Ed25519-verify base64-decoded "signature" over the ASCII bytes of "hash"
       with the key in head.json's "keys" whose key_id is the line's "key_id";
       the line's id must lie in that key's range (after_entry_id < id <=
       last_entry_id; null means unbounded)
  Then the last line's id and hash must equal head.json's last_entry_id and
  last_hash; head.json's signature is over the canonical JSON of its other keys.
"""


def _export_keys(rows: list[LedgerKey], current: Ed25519PublicKey) -> list[dict[str, Any]]:
    if not rows:
        rows = [
            LedgerKey(
                key_id=key_id_for(current),
                public_key=public_key_pem(current).decode("ascii"),
                activated_at=None,
            )
        ]
    return [
        {
            "key_id": row.key_id,
            "public_key": row.public_key,
            "after_entry_id": row.after_entry_id,
            "last_entry_id": row.last_entry_id,
            "activated_at": iso_utc(row.activated_at) if row.activated_at else None,
            "retired_at": iso_utc(row.retired_at) if row.retired_at else None,
        }
        for row in rows
    ]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return dumps_canonical(value).decode("ascii")
    return str(value)


async def export_evidence(
    session: AsyncSession,
    out_dir: Path,
    signer_or_public_pem: Signer | bytes,
    *,
    since: dt.datetime | None = None,
    fmt: str = "jsonl",
) -> Path:
    """Write the ledger (``ledger.jsonl`` or ``ledger.csv``), ``public_key.pem``, ``head.json``, ``README.txt``.

    ``since``: export from the first entry created at or after it to the end. Its
    ``prev_hash`` — the hash of the entry before it, the *anchor* — is stated in
    head.json, so the exported part verifies as a chain of its own.
    Given a ``Signer``, head.json is signed, so cutting lines off the end of the
    exported file is detectable; given only a public key it is not (say so).
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(signer_or_public_pem, Signer):
        signer: Signer | None = signer_or_public_pem
        pem = signer_or_public_pem.public_key_pem()
    else:
        signer = None
        pem = signer_or_public_pem
    key = load_public_key(pem)

    first_id = 1
    if since is not None:
        if since.tzinfo is None:
            raise ValueError("naive --since; give a time zone")
        found = await session.scalar(select(func.min(LedgerEntry.id)).where(LedgerEntry.created_at >= since))
        first_id = (
            found if found is not None else (await session.scalar(select(func.max(LedgerEntry.id))) or 0) + 1
        )
    anchor_id = await session.scalar(select(func.max(LedgerEntry.id)).where(LedgerEntry.id < first_id))
    anchor_hash = GENESIS_HASH
    if anchor_id is not None:
        anchor_hash = str(await session.scalar(select(LedgerEntry.hash).where(LedgerEntry.id == anchor_id)))

    count = 0
    first_exported: int | None = None
    last_id: int | None = anchor_id
    last_hash = anchor_hash
    ledger_file = LEDGER_FILE if fmt == "jsonl" else LEDGER_CSV_FILE
    with (out_dir / ledger_file).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writerow(EXPORT_FIELDS)
        async for record in iter_entries(session, from_id=first_id):
            line = {name: record[name] for name in EXPORT_FIELDS}
            line["created_at"] = iso_utc(line["created_at"])
            plain = jsonable(line)
            if writer is not None:
                writer.writerow([_csv_value(plain[name]) for name in EXPORT_FIELDS])
            else:
                fh.write(dumps_canonical(plain).decode("ascii") + "\n")
            count += 1
            if first_exported is None:
                first_exported = record["id"]
            last_id, last_hash = record["id"], record["hash"]

    head = await _read_head(session)
    key_rows = list((await session.scalars(select(LedgerKey).order_by(LedgerKey.activated_at))).all())
    head_doc: dict[str, Any] = {
        "entries": count,
        "last_entry_id": last_id,
        "last_hash": last_hash,
        # The database's own head: differs from the above if entries were deleted at the end.
        "db_head_entry_id": head[0] if head else None,
        "db_head_hash": head[1] if head else None,
        "key_id": key_id_for(key),
        "format": fmt,
        "file": ledger_file,
        "since": iso_utc(since) if since is not None else None,
        "first_entry_id": first_exported,
        # The hash the first exported entry's prev_hash must equal ("0"*64: the chain's start).
        "anchor_entry_id": anchor_id,
        "anchor_hash": anchor_hash,
        "keys": _export_keys(key_rows, key),
    }
    if signer is not None:
        head_doc["signature"] = signer.sign(dumps_canonical(head_doc))
    (out_dir / HEAD_FILE).write_bytes(json.dumps(head_doc, indent=2, sort_keys=True).encode() + b"\n")
    (out_dir / PUBLIC_KEY_FILE).write_bytes(pem)
    if anchor_id is None:
        scope = "Scope\n  The whole ledger, from its first entry (anchor: the chain's start, 64 zeros)."
    else:
        scope = (
            f"Scope\n  Entries created since {iso_utc(since) if since else '?'}: entry {first_exported} onwards. "
            f"The anchor is entry {anchor_id}'s hash\n  {anchor_hash}\n"
            "  (the first exported line's prev_hash must equal it; head.json states it, signed)."
        )
    (out_dir / README_FILE).write_text(
        README_TEXT.format(
            key_id=key_id_for(key),
            head_signed="signed" if signer else "NOT signed",
            ledger_file=ledger_file.ljust(14),
            format_note=(
                " (JSON, sorted keys)"
                if fmt == "jsonl"
                else " (CSV with a header; proof and controls are JSON, empty means null)"
            ),
            scope=scope,
        ),
        encoding="utf-8",
    )
    return out_dir


# ---------------------------------------------------------- reading an export

_INT = (int,)
_NULLABLE_INT = (int, type(None))
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": _INT,
    "prev_hash": (str,),
    "created_at": (str,),
    "guild_id": _NULLABLE_INT,
    "outcome": (str,),
    "rule": (str,),
    "reason": (str,),
    "proof": (dict,),
    "controls": (list,),
    "actor_id": _NULLABLE_INT,
    "request_id": _NULLABLE_INT,
    "grant_id": _NULLABLE_INT,
    "hash": (str,),
    "signature": (str,),
    "key_id": (str,),
}


def _type_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", str: "a string", dict: "an object", list: "a list", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = "…"
    return text if len(text) <= 40 else text[:37] + "..."


def _record_problem(record: Any) -> str | None:
    """What makes a parsed line unusable as an entry, or None."""
    if not isinstance(record, dict):
        return f"not a JSON object but {_json_type(record)}"
    missing = [f for f in EXPORT_FIELDS if f not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    for name, kinds in FIELD_TYPES.items():
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f'"{name}" must be {_type_name(kinds)}, not {_json_type(value)} ({_shown(value)})'
    for name in ("prev_hash", "hash"):
        if not _is_hash(record[name]):
            return f'"{name}" must be 64 lowercase hex characters, not {_shown(record[name])}'
    if not all(isinstance(c, str) for c in record["controls"]):
        return '"controls" must be a list of strings'
    return None


def _is_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _parse_csv_row(header: list[str], row: list[str]) -> Any:
    if len(row) != len(header):
        raise ValueError(f"has {len(row)} fields, the header {len(header)}")
    record: dict[str, Any] = {}
    for name, value in zip(header, row, strict=True):
        kinds = FIELD_TYPES.get(name)
        if kinds is None:
            record[name] = value
        elif kinds in (_INT, _NULLABLE_INT):
            if value == "" and kinds == _NULLABLE_INT:
                record[name] = None
            else:
                try:
                    record[name] = int(value)
                except ValueError:
                    raise ValueError(f'"{name}" must be an integer, not {_shown(value)}') from None
        elif kinds in ((dict,), (list,)):
            try:
                record[name] = json.loads(value)
            except (ValueError, RecursionError):
                raise ValueError(f'"{name}" is not valid JSON') from None
        else:
            record[name] = value
    return record


def _read_records(path: Path, checker: _ChainChecker) -> Iterator[dict[str, Any]]:
    """The file's entries; each unusable line becomes one problem naming its line number."""
    for number, record in _raw_records(path, checker):
        problem = _record_problem(record)
        if problem is not None:
            checker.problem(f"line {number}: {problem}")
            if isinstance(record, dict) and isinstance(record.get("hash"), str):
                checker.prev_hash = record["hash"]  # one bad line, one problem: the next link still checks
            continue
        extra = sorted(set(record) - set(EXPORT_FIELDS))
        if extra:
            checker.problem(f"line {number}: unexpected keys {', '.join(map(str, extra))[:200]}")
        yield record


def _raw_records(path: Path, checker: _ChainChecker) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader, None)
                if header != list(EXPORT_FIELDS):
                    checker.problem(f"line 1: the header must be {','.join(EXPORT_FIELDS)}")
                    return
                for row in reader:
                    if not row:
                        continue
                    try:
                        yield reader.line_num, _parse_csv_row(header, row)
                    except ValueError as exc:
                        checker.problem(f"line {reader.line_num}: {exc}")
            except csv.Error as exc:
                checker.problem(f"line {reader.line_num}: not valid CSV ({exc})")
        return
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                checker.problem(f"line {number}: not valid JSON")
                continue
            yield number, record


def _head_keys(head_doc: Mapping[str, Any]) -> dict[str, KeyInfo]:
    keys: dict[str, KeyInfo] = {}
    listed = head_doc.get("keys")
    if not isinstance(listed, list):
        return keys
    for item in listed:
        if not isinstance(item, dict):
            continue
        public = _pem_key(item.get("public_key"))
        after, last = item.get("after_entry_id"), item.get("last_entry_id")
        if public is None or item.get("key_id") != key_id_for(public):
            continue
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (after, last)):
            continue
        keys[key_id_for(public)] = KeyInfo(key_id_for(public), public, after, last, ranged=True)
    return keys


def ledger_file_of(directory: Path) -> Path | None:
    for name in (LEDGER_FILE, LEDGER_CSV_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def verify_export(
    directory: str | os.PathLike[str],
    public_key_pem: bytes | None = None,
    *,
    checkpoints: Iterable[CheckpointFile] = (),
) -> VerifyReport:
    """Verify an export from its files alone (no database, no trust in the bot).

    Uses the export's ``public_key.pem`` unless ``public_key_pem`` (obtained
    independently) is given — prefer that when you have it. Older keys are taken
    from head.json once its signature verifies with that key. Never raises on a
    malformed file: each unusable line is a problem naming its line number.
    """
    directory = Path(directory)
    pem = public_key_pem if public_key_pem is not None else (directory / PUBLIC_KEY_FILE).read_bytes()
    key = load_public_key(pem)
    keys = _keyring(key)
    warnings: list[str] = []
    problems: list[str] = []

    head_doc: dict[str, Any] | None = None
    head_path = directory / HEAD_FILE
    signature: Any = None
    if head_path.exists():
        try:
            loaded = json.loads(head_path.read_bytes())
        except (ValueError, RecursionError):
            loaded = None
        if isinstance(loaded, dict):
            head_doc = loaded
            signature = head_doc.pop("signature", None)
        else:
            problems.append("head.json: not a JSON object")
    head_signed = False
    if head_doc is not None and signature is not None:
        try:
            head_bytes: bytes | None = dumps_canonical(head_doc)
        except (ValueError, TypeError, RecursionError):
            head_bytes = None
        if head_bytes is not None and _verify_bytes(key, head_bytes, str(signature)):
            head_signed = True
            for kid, info in _head_keys(head_doc).items():
                keys[kid] = info  # vouched for by the active key's signature over head.json
        else:
            problems.append(f"head.json: signature invalid for key {key_id_for(key)}")

    anchor = GENESIS_HASH
    if head_doc is not None and isinstance(head_doc.get("anchor_hash"), str):
        anchor = head_doc["anchor_hash"]
    ledger_path = ledger_file_of(directory) or directory / LEDGER_FILE

    # First pass: the handovers, so each entry is checked against the key of its period.
    scratch = _ChainChecker(keys)
    rotations = [r for r in _read_records(ledger_path, scratch) if r["outcome"] == ROTATION_OUTCOME]
    _apply_rotations(keys, rotations, warnings)

    checker = _ChainChecker(keys, start_hash=anchor)
    anchor_id = head_doc.get("anchor_entry_id") if head_doc is not None else None
    if anchor != GENESIS_HASH and isinstance(anchor_id, int) and not isinstance(anchor_id, bool):
        checker.prev_id = anchor_id  # the entry before the first exported one
    for problem in problems:
        checker.problem(problem)
    checker.expect(_trusted_checkpoints(checkpoints, keys, checker))
    for record in _read_records(ledger_path, checker):
        checker.check(record)

    first_id = head_doc.get("first_entry_id") if head_doc is not None else None
    if not isinstance(first_id, int) or isinstance(first_id, bool) or anchor == GENESIS_HASH:
        first_id = None
    warnings += checker.finish_checkpoints(first_id)
    if head_doc is None:
        if not problems:
            warnings.append("head.json is missing: lines removed from the end cannot be detected")
        return checker.report(warnings)
    if signature is None:
        warnings.append("head.json is not signed: lines removed from the end cannot be detected")
    checker.check_head(head_doc.get("last_entry_id"), head_doc.get("last_hash", ""), where="head.json")
    if head_doc.get("entries") != checker.entries:
        checker.problem(
            f"head.json counts {_shown(head_doc.get('entries'))} entries but the file has {checker.entries}"
        )
    db_head = (head_doc.get("db_head_entry_id"), head_doc.get("db_head_hash"))
    if db_head != (head_doc.get("last_entry_id"), head_doc.get("last_hash")):
        checker.problem(
            f"the database head named entry {_shown(db_head[0])} when exported, but the export ends at "
            f"entry {_shown(head_doc.get('last_entry_id'))} (entries deleted at the end before export?)"
        )
    if anchor != GENESIS_HASH and head_signed:
        warnings.append(
            f"this export starts after entry {_shown(head_doc.get('anchor_entry_id'))} (anchor hash "
            f"{anchor[:16]}…): it proves the entries from there on, not the ones before"
        )
    return checker.report(warnings)
