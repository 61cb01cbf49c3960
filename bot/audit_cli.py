"""`warden audit verify|export|checkpoint|rotate-key`: prove the signed ledger.

- ``warden audit verify``: every entry's hash, link and signature in the database, and the head.
  The public key is ``--public-key`` (a PEM file, obtained independently — preferred) or the one
  derived from the signing key Warden runs with. ``--checkpoint FILE|DIR`` (repeatable): the
  ledger must still reach every checkpoint with the same hash (catches a cut-off tail).
- ``warden audit verify --export DIR``: an exported directory, from its files alone.
- ``warden audit export OUT [--since DATE] [--format jsonl|csv]``: the ledger (from ``--since``,
  anchored to the entry before), ``public_key.pem``, a signed ``head.json`` with every public key
  and its validity, and a README for the auditor.
- ``warden audit checkpoint [--out FILE|DIR]``: a signed checkpoint of the ledger's length and head.
- ``warden audit rotate-key [--lost-key]``: a new signing key; old entries stay verifiable.

Exit status: 0 verified / exported, 1 the ledger does not verify, 2 a setup problem
(missing key, database, config). The private key is only ever used to sign, never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import SystemClock
from bot.ledger import (
    CheckpointFile,
    Signer,
    VerifyReport,
    checkpoint_to,
    export_evidence,
    key_id_for,
    ledger_file_of,
    load_public_key,
    read_checkpoints,
    rotate_key,
    verify_chain,
    verify_export,
)
from bot.policy import Policy, PolicyError, load_policy
from bot.settings import Settings, redact_url
from bot.startup import StartupError

T = TypeVar("T")

DEFAULT_CHECKPOINT_DIR = "ledger-checkpoints"


def run_audit(args: argparse.Namespace, settings: Settings) -> int:
    if args.audit_command == "verify":
        return _verify(args, settings)
    if args.audit_command == "export":
        return _export(args, settings)
    if args.audit_command == "checkpoint":
        return _checkpoint(args, settings)
    if args.audit_command == "rotate-key":
        return _rotate_key(args, settings)
    if args.audit_command == "report":
        from bot.report.cli import run_report

        return run_report(args, settings)
    raise StartupError(
        f"unknown audit command {args.audit_command!r}; use verify, export, checkpoint, rotate-key or report"
    )


# --------------------------------------------------------------------- inputs


def _optional_policy(args: argparse.Namespace, settings: Settings) -> Policy | None:
    """The policy for its ``[warden]`` settings: ``--config`` must exist; the default may be absent."""
    path = Path(args.config) if getattr(args, "config", None) else settings.config
    if not path.exists():
        if getattr(args, "config", None):
            raise StartupError(f"config file {path} not found")
        return None
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise StartupError(str(exc)) from None


def _read_public_key(path: str) -> tuple[Ed25519PublicKey, bytes]:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"--public-key {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return load_public_key(pem), pem
    except ValueError as exc:
        raise StartupError(f"--public-key {path}: not an Ed25519 public key in PEM form ({exc})") from None


def _signer(settings: Settings, policy: Policy | None) -> Signer:
    path = settings.resolved_signing_key(policy)
    try:
        return Signer.from_file(path)
    except FileNotFoundError:
        raise StartupError(
            f"ledger signing key {path} not found: set WARDEN_SIGNING_KEY (or [warden].signing_key_path) "
            "to the key Warden runs with, or pass --public-key with its public key"
        ) from None
    except (ValueError, TypeError, OSError) as exc:
        raise StartupError(f"ledger signing key {path} cannot be used: {exc}") from None


def _checkpoint_files(args: argparse.Namespace) -> list[CheckpointFile]:
    paths = getattr(args, "checkpoint", None) or []
    for path in paths:
        if not Path(path).exists():
            raise StartupError(f"--checkpoint {path}: no such file or directory")
    files = read_checkpoints(paths)
    if paths and not files:
        raise StartupError(f"--checkpoint {', '.join(paths)}: no checkpoint files (*.json) found")
    return files


def _since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise StartupError(
            f"--since {value!r} is not a date: use ISO 8601, e.g. 2026-01-01 or 2026-01-01T09:00+00:00"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _database_url(settings: Settings, policy: Policy | None) -> str:
    url = settings.resolved_database_url(policy)
    parsed = make_url(url)
    in_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if in_file and not Path(str(parsed.database)).exists():
        raise StartupError(
            f"database {redact_url(url)} does not exist: run `warden migrate` or `warden run` first, "
            "or point WARDEN_DATABASE_URL at Warden's database"
        )
    return url


async def with_session_factory(
    url: str,
    tables: set[str],
    work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]],
    *,
    what: str | None = None,
) -> T:
    """Run ``work`` against Warden's database, after checking it holds ``tables`` (migrated).

    A missing table is named (or, with ``what``, called "the ``what`` tables").
    """
    from bot.db.session import create_engine, create_session_factory

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            present = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        if missing := tables - present:
            named = f"{what} tables" if what else f"{', '.join(sorted(missing))} table"
            raise StartupError(f"database {redact_url(url)} has no {named}: run `warden migrate` first")
        return await work(create_session_factory(engine))
    except SQLAlchemyError as exc:
        raise StartupError(
            f"database {redact_url(url)}: {type(exc).__name__}: {exc.args[0] if exc.args else exc}"
        ) from None
    except OSError as exc:
        raise StartupError(f"database {redact_url(url)} cannot be reached: {exc}") from None
    finally:
        await engine.dispose()


async def _with_factory(url: str, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    return await with_session_factory(url, {"ledger_entries", "ledger_head"}, work, what="ledger")


async def _with_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def in_session(factory: async_sessionmaker[AsyncSession]) -> T:
        async with factory() as session:
            return await work(session)

    return await _with_factory(url, in_session)


@contextlib.contextmanager
def _file_errors(what: str) -> Iterator[None]:
    """A file Warden writes (not the database) failed: say which, as a setup problem."""
    try:
        yield
    except OSError as exc:
        if not exc.filename:
            raise
        raise StartupError(f"{what}: {exc.filename}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------- output


def _print_report(what: str, report: VerifyReport, key_id: str) -> int:
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.ok:
        print(
            f"{what} OK: {report.entries} entries, chain and signatures verified with key {key_id}"
            + (f" (last entry {report.last_entry_id})" if report.last_entry_id is not None else "")
            + (f"; reaches all {report.checkpoints} checkpoint(s)" if report.checkpoints else "")
        )
        return 0
    print(
        f"{what} FAILED: {len(report.problems)} problem(s) in {report.entries} entries "
        f"(checked with key {key_id}):",
        file=sys.stderr,
    )
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------- commands


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    checkpoints = _checkpoint_files(args)
    if args.export:
        directory = Path(args.export)
        if ledger_file_of(directory) is None:
            raise StartupError(
                f"{directory} is not an evidence export (no ledger.jsonl or ledger.csv); make one with "
                "`warden audit export`"
            )
        pem = _read_public_key(args.public_key)[1] if args.public_key else None
        try:
            report = verify_export(directory, public_key_pem=pem, checkpoints=checkpoints)
        except (OSError, ValueError) as exc:
            raise StartupError(f"{directory}: cannot be read ({exc})") from None
        key = load_public_key(pem if pem is not None else (directory / "public_key.pem").read_bytes())
        if pem is None:
            report.warnings.append(
                "checked with the export's own public_key.pem; pass --public-key with a key obtained "
                "independently to prove who signed it"
            )
        return _print_report(f"export {directory}", report, key_id_for(key))

    policy = _optional_policy(args, settings)
    if args.public_key:
        key, _ = _read_public_key(args.public_key)
    else:
        key = _signer(settings, policy).public_key
    url = _database_url(settings, policy)
    report = asyncio.run(
        _with_session(url, lambda session: verify_chain(session, key, checkpoints=checkpoints))
    )
    return _print_report("ledger", report, key_id_for(key))


def _export(args: argparse.Namespace, settings: Settings) -> int:
    policy = _optional_policy(args, settings)
    signer = _signer(settings, policy)
    url = _database_url(settings, policy)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise StartupError(f"{out} exists and is not a directory")
    since = _since(getattr(args, "since", None))
    fmt = getattr(args, "format", None) or "jsonl"

    async def work(session: AsyncSession) -> VerifyReport:
        report = await verify_chain(session, signer.public_key)
        await export_evidence(session, out, signer, since=since, fmt=fmt)
        return report

    report = asyncio.run(_with_session(url, work))
    head = json.loads((out / "head.json").read_text(encoding="utf-8"))
    scope = (
        f"{head['entries']} of {report.entries} ledger entries"
        if since
        else f"{report.entries} ledger entries"
    )
    print(
        f"exported {scope} to {out} as {fmt} (key id {signer.key_id}); "
        f"verify with: warden audit verify --export {out} --public-key <Warden's public key PEM>"
    )
    if head.get("anchor_entry_id") is not None:
        print(
            f"note: this export starts after entry {head['anchor_entry_id']}; its first entry links to that "
            f"entry's hash {head['anchor_hash']} (the anchor, stated in head.json)"
        )
    if not report.ok:
        print(
            "warning: the ledger in the database does not verify; the export carries the problems as found:",
            file=sys.stderr,
        )
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


def _checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    policy = _optional_policy(args, settings)
    signer = _signer(settings, policy)
    url = _database_url(settings, policy)
    given = getattr(args, "out", None)
    out = Path(given or DEFAULT_CHECKPOINT_DIR)
    if not given or given.endswith(("/", os.sep)):  # a directory: a new file in it each time
        try:
            out.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"{out}: cannot create the checkpoint directory ({exc.strerror or exc})"
            ) from None

    async def work(factory: async_sessionmaker[AsyncSession]) -> str:
        with _file_errors("cannot write the checkpoint"):
            checkpoint = await checkpoint_to(factory, signer, out, now=SystemClock().now())
        return f"wrote {checkpoint.source}: {checkpoint.narrative()}"

    print(asyncio.run(_with_factory(url, work)))
    print("ship it off this machine; check with: warden audit verify --checkpoint <file or directory>")
    return 0


def _rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    policy = _optional_policy(args, settings)
    path = settings.resolved_signing_key(policy)
    url = _database_url(settings, policy)
    lost = bool(getattr(args, "lost_key", False))
    if lost and path.exists():
        raise StartupError(
            f"--lost-key, but the signing key {path} is there: rotate without --lost-key so the old key "
            "signs the handover"
        )

    async def work(factory: async_sessionmaker[AsyncSession]) -> str:
        with _file_errors("cannot write the new signing key"):
            rotation = await rotate_key(factory, path, now=SystemClock().now(), lost=lost)
        return (
            f"signing key rotated: key {rotation.new_key_id} is now active in {path} (was "
            f"{rotation.old_key_id or 'none'}; handover recorded as ledger entry {rotation.entry_id}). "
            "Back up the new key file, give auditors its public key (`warden audit export` carries every "
            "key), and restart Warden on other hosts with the new file."
        )

    print(asyncio.run(_with_factory(url, work)))
    if lost:
        print(
            "warning: the old key did not sign this handover; auditors must obtain the new public key "
            "from you directly to trust entries from here on",
            file=sys.stderr,
        )
    return 0
