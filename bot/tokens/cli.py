"""`warden token verify`: introspect an access token for a gateway or a script.

The token is read from standard input (never from the command line, where ``ps`` and shell
history would show it); on a terminal it is asked for without echo. A valid token has its use
recorded. Output is one line (or one JSON object with ``--json``, shaped like an OAuth 2.0
introspection response, RFC 7662: ``{"active": true, ...}``).

Exit status: 0 valid, 1 not valid (malformed, unknown, expired or revoked), 2 a setup problem.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.audit_cli import _database_url, _optional_policy, with_session_factory
from bot.clock import Clock, SystemClock
from bot.settings import Settings
from bot.startup import StartupError
from bot.tokens.service import TokenCheck, TokenService

# Longer than any Warden token by far; anything bigger is not a token and is not read further.
MAX_TOKEN_INPUT = 512


def add_token_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``token verify`` on the ``warden`` subparsers (``sub`` from ``add_subparsers``).

    Returns the command's parser, for ``set_defaults(func=...)``.
    """
    p = sub.add_parser("token", help="access tokens Warden issued for systems outside Discord")
    tsub = p.add_subparsers(dest="token_command", required=True)
    v = tsub.add_parser("verify", help="check a token read from standard input; records a use when valid")
    v.add_argument("--json", action="store_true", help="print an RFC 7662-style introspection object")
    v.add_argument("--config", help="policy file, for [warden] settings")
    return p


def run_token_cli(
    args: argparse.Namespace, settings: Settings, *, stdin: TextIO | None = None, clock: Clock | None = None
) -> int:
    if args.token_command == "verify":
        return _verify(args, settings, stdin or sys.stdin, clock or SystemClock())
    raise StartupError(f"unknown token command {args.token_command!r}; use verify")


def _read_token(stdin: TextIO) -> str:
    # A terminal gets a prompt without echo; a pipe is read up to a bound (a longer input is no token).
    value = getpass.getpass("token: ") if stdin.isatty() else stdin.read(MAX_TOKEN_INPUT + 1)
    value = value.strip()
    if not value:
        raise StartupError(
            'no token given: pipe it on standard input, e.g. printf %s "$TOKEN" | warden token verify'
        )
    return value


def _render(check: TokenCheck, as_json: bool) -> str:
    info = check.info
    if as_json:
        body: dict[str, object] = {"active": check.valid}
        if check.valid and info is not None:
            body |= {
                "token_id": info.id,
                "scope": info.scope_id,
                "sub": str(info.subject_id),
                "guild_id": str(info.guild_id),
                "grant_id": info.grant_id,
                "exp": int(info.expires_at.timestamp()),
                "expires_at": info.expires_at.isoformat(),
                "use_count": info.use_count,
            }
        else:
            body["reason"] = check.outcome.value
        return json.dumps(body)
    if check.valid and info is not None:
        return (
            f"valid: token {info.id} for scope {info.scope_id}, subject {info.subject_id}, "
            f"until {info.expires_at.isoformat()} (use {info.use_count})"
        )
    return f"not valid: {check.outcome.value}"


def _verify(args: argparse.Namespace, settings: Settings, stdin: TextIO, clock: Clock) -> int:
    token = _read_token(stdin)
    policy = _optional_policy(args, settings)
    url = _database_url(settings, policy)

    async def work(factory: async_sessionmaker[AsyncSession]) -> TokenCheck:
        return await TokenService(factory, clock).verify(token)

    check = asyncio.run(with_session_factory(url, {"access_tokens"}, work))
    print(_render(check, args.json))
    return 0 if check.valid else 1
