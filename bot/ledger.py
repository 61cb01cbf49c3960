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
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import LedgerEntry, LedgerHead

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

LEDGER_FILE = "ledger.jsonl"
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

    __slots__ = ("_key", "key_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.key_id: str = key_id_for(self.public_key)

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
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(signer._private_pem())
            log.info("created ledger signing key %s (key id %s)", path, signer.key_id)
            return signer
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("ledger signing key %s is readable by others (mode %o); chmod 600 it", path, mode)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

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
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if obj is None or isinstance(obj, bool | str):
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

    entry = LedgerEntry(
        guild_id=guild_id,
        created_at=created_at.astimezone(dt.UTC),
        outcome=str(outcome),
        rule=rule,
        reason=reason,
        proof=jsonable(dict(proof)),
        controls=[str(c) for c in controls],
        actor_id=actor_id,
        request_id=request_id,
        grant_id=grant_id,
        prev_hash=head.last_hash,
    )
    entry.hash = entry_hash(_content_of(entry))
    entry.signature = signer.sign(entry.hash.encode("ascii"))
    entry.key_id = signer.key_id
    session.add(entry)
    await session.flush()
    head.last_entry_id = entry.id
    head.last_hash = entry.hash
    await session.flush()
    return entry


def _content_of(entry: LedgerEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in CONTENT_FIELDS}


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


PublicKeys = Ed25519PublicKey | Iterable[Ed25519PublicKey]


def _keyring(public_key: PublicKeys) -> dict[str, Ed25519PublicKey]:
    keys = [public_key] if isinstance(public_key, Ed25519PublicKey) else list(public_key)
    return {key_id_for(k): k for k in keys}


class _ChainChecker:
    """Checks entries one at a time, in id order; shared by the database and export checks."""

    def __init__(self, public_key: PublicKeys, max_problems: int = MAX_PROBLEMS) -> None:
        self.keys = _keyring(public_key)
        self.max_problems = max_problems
        self.problems: list[str] = []
        self.suppressed = 0
        self.entries = 0
        self.prev_id: int | None = None
        self.prev_hash = GENESIS_HASH

    def problem(self, text: str) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(text)
        else:
            self.suppressed += 1

    def check(self, record: Mapping[str, Any]) -> None:
        entry_id = record["id"]
        self.entries += 1
        if self.prev_id is not None and entry_id <= self.prev_id:
            self.problem(f"entry {entry_id}: out of order after entry {self.prev_id}")
        try:
            computed = entry_hash(record)
        except (TypeError, ValueError) as exc:
            self.problem(f"entry {entry_id}: contents cannot be read ({exc})")
            computed = None
        if computed is not None and computed != record["hash"]:
            self.problem(f"entry {entry_id}: hash does not match its contents (edited?)")
        if record["prev_hash"] != self.prev_hash:
            if self.prev_id is None:
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
        elif not verify_signature(key, str(record["hash"]), str(record["signature"])):
            self.problem(f"entry {entry_id}: signature invalid for key {record['key_id']}")
        self.prev_id = entry_id
        self.prev_hash = record["hash"]

    def check_head(self, head_entry_id: int | None, head_hash: str, where: str = "head") -> None:
        if head_entry_id != self.prev_id:
            if self.prev_id is None:
                self.problem(f"{where} names entry {head_entry_id} but there are no entries (all deleted?)")
            elif head_entry_id is None or head_entry_id > self.prev_id:
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
        )


async def iter_entries(session: AsyncSession, page_size: int = PAGE_SIZE) -> AsyncIterator[dict[str, Any]]:
    """All entries in id order as plain dicts, a page at a time (keyset paging, no ORM identity map)."""
    table = LedgerEntry.__table__
    last_id = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(*table.c).where(table.c.id > last_id).order_by(table.c.id).limit(page_size)
                )
            )
            .mappings()
            .all()
        )
        for row in rows:
            yield dict(row)
        if len(rows) < page_size:
            return
        last_id = rows[-1]["id"]


async def _read_head(session: AsyncSession) -> tuple[int | None, str] | None:
    table = LedgerHead.__table__
    row = (
        await session.execute(select(table.c.last_entry_id, table.c.last_hash).where(table.c.id == HEAD_ID))
    ).first()
    return None if row is None else (row[0], row[1])


async def verify_chain(
    session: AsyncSession, public_key: PublicKeys, *, max_problems: int = MAX_PROBLEMS
) -> VerifyReport:
    """Check every entry's hash, link and signature, and the head. Read-only.

    ``public_key`` may be one key or several (after a key rotation).
    """
    checker = _ChainChecker(public_key, max_problems)
    async for record in iter_entries(session):
        checker.check(record)
    head = await _read_head(session)
    if head is None:
        checker.problem("the ledger_head row is missing")
    else:
        checker.check_head(*head)
    return checker.report()


# ---------------------------------------------------------------------- export

README_TEXT = """\
Warden decision ledger — evidence export
=======================================

Files
  ledger.jsonl    one ledger entry per line, in order (JSON, sorted keys)
  public_key.pem  the Ed25519 public key the entries are signed with
  head.json       the chain's tip when exported ({head_signed} by the same key)

What is proven
  Each entry's hash is SHA-256 over its canonical bytes, which include the
  previous entry's hash; each hash is signed. Editing, removing or reordering
  an entry breaks the chain, and nobody without the private key can re-sign it.
  head.json names the last entry, so removing lines from the end shows too.

Check that the key is Warden's
  Key id (first 16 hex of SHA-256 of the raw 32-byte public key): {key_id}
  Compare it with the key id in the governance channel's narratives or the one
  the operator gave you by another channel before trusting this export.

Verify
  With Warden installed:   warden audit verify --export <this directory> --public-key <key you trust>
  or in Python:            from bot.ledger import verify_export; print(verify_export(path))

  By hand, for every line in order:
    1. content = the line's object with only these keys:
       prev_hash, created_at, guild_id, outcome, rule, reason, proof,
       controls, actor_id, request_id, grant_id
    2. canonical = JSON of content with keys sorted at every level, separators
       "," and ":" and no whitespace, non-ASCII escaped as \\uXXXX
       (Python: json.dumps(content, sort_keys=True, separators=(",", ":"),
       ensure_ascii=True)), encoded as ASCII
    3. sha256(canonical) as lowercase hex must equal "hash"
    4. "prev_hash" must equal the previous line's "hash" ("0" * 64 for the first)
    5. Ed25519-verify base64-decoded "signature" over the ASCII bytes of "hash"
       with public_key.pem
  Then the last line's id and hash must equal head.json's last_entry_id and
  last_hash; head.json's signature is over the same canonical JSON of its
  other keys.
"""


async def export_evidence(session: AsyncSession, out_dir: Path, signer_or_public_pem: Signer | bytes) -> Path:
    """Write ``ledger.jsonl``, ``public_key.pem``, ``head.json`` and ``README.txt`` to ``out_dir``.

    Given a ``Signer``, head.json is signed, so cutting lines off the end of the
    exported file is detectable; given only a public key it is not (say so).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(signer_or_public_pem, Signer):
        signer: Signer | None = signer_or_public_pem
        pem = signer_or_public_pem.public_key_pem()
    else:
        signer = None
        pem = signer_or_public_pem
    key = load_public_key(pem)

    count = 0
    last_id: int | None = None
    last_hash = GENESIS_HASH
    with (out_dir / LEDGER_FILE).open("wb") as fh:
        async for record in iter_entries(session):
            line = {name: record[name] for name in EXPORT_FIELDS}
            line["created_at"] = iso_utc(line["created_at"])
            fh.write(dumps_canonical(jsonable(line)) + b"\n")
            count += 1
            last_id, last_hash = record["id"], record["hash"]

    head = await _read_head(session)
    head_doc: dict[str, Any] = {
        "entries": count,
        "last_entry_id": last_id,
        "last_hash": last_hash,
        # The database's own head: differs from the above if entries were deleted at the end.
        "db_head_entry_id": head[0] if head else None,
        "db_head_hash": head[1] if head else None,
        "key_id": key_id_for(key),
    }
    if signer is not None:
        head_doc["signature"] = signer.sign(dumps_canonical(head_doc))
    (out_dir / HEAD_FILE).write_bytes(json.dumps(head_doc, indent=2, sort_keys=True).encode() + b"\n")
    (out_dir / PUBLIC_KEY_FILE).write_bytes(pem)
    (out_dir / README_FILE).write_text(
        README_TEXT.format(key_id=key_id_for(key), head_signed="signed" if signer else "NOT signed"),
        encoding="utf-8",
    )
    return out_dir


def _read_lines(path: Path, checker: _ChainChecker) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                checker.problem(f"line {number}: not valid JSON")
                continue
            missing = [f for f in EXPORT_FIELDS if f not in record] if isinstance(record, dict) else ["all"]
            if missing:
                checker.problem(f"line {number}: missing {', '.join(missing)}")
                continue
            extra = sorted(set(record) - set(EXPORT_FIELDS))
            if extra:
                checker.problem(f"entry {record['id']}: unexpected keys {', '.join(extra)}")
            yield record


def verify_export(directory: str | os.PathLike[str], public_key_pem: bytes | None = None) -> VerifyReport:
    """Verify an export from its files alone (no database, no trust in the bot).

    Uses the export's ``public_key.pem`` unless ``public_key_pem`` (obtained
    independently) is given — prefer that when you have it.
    """
    directory = Path(directory)
    pem = public_key_pem if public_key_pem is not None else (directory / PUBLIC_KEY_FILE).read_bytes()
    key = load_public_key(pem)
    checker = _ChainChecker(key)
    warnings: list[str] = []
    for record in _read_lines(directory / LEDGER_FILE, checker):
        checker.check(record)

    head_path = directory / HEAD_FILE
    if not head_path.exists():
        warnings.append("head.json is missing: lines removed from the end cannot be detected")
        return checker.report(warnings)
    head_doc = json.loads(head_path.read_text(encoding="utf-8"))
    signature = head_doc.pop("signature", None)
    if signature is None:
        warnings.append("head.json is not signed: lines removed from the end cannot be detected")
    elif not _verify_bytes(key, dumps_canonical(head_doc), signature):
        checker.problem(f"head.json: signature invalid for key {key_id_for(key)}")
    checker.check_head(head_doc.get("last_entry_id"), head_doc.get("last_hash", ""), where="head.json")
    if head_doc.get("entries") != checker.entries:
        checker.problem(
            f"head.json counts {head_doc.get('entries')} entries but the file has {checker.entries}"
        )
    db_head = (head_doc.get("db_head_entry_id"), head_doc.get("db_head_hash"))
    if db_head != (head_doc.get("last_entry_id"), head_doc.get("last_hash")):
        checker.problem(
            f"the database head named entry {db_head[0]} when exported, but the export ends at "
            f"entry {head_doc.get('last_entry_id')} (entries deleted at the end before export?)"
        )
    return checker.report(warnings)
