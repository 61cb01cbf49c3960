from __future__ import annotations

from bot.audit.grant_ledger import SqlGrantLedger
from bot.db.models import Grant, GrantStatus
from tests.helpers import ALICE, BOB, GUILD, JIT_ROLE, PRIVATE_CHANNEL, T0


def grant(status: GrantStatus, subject: int = ALICE, kind: str = "role", target: int = JIT_ROLE) -> Grant:
    return Grant(
        guild_id=GUILD,
        scope_id="deploy",
        subject_id=subject,
        kind=kind,
        target_id=target,
        status=status,
        duration_seconds=3600,
        created_at=T0,
    )


async def test_only_live_grants_sanction_access(session_factory):
    async with session_factory() as s, s.begin():
        s.add_all(
            [
                grant(GrantStatus.EXPIRED),
                grant(GrantStatus.ACTIVE, subject=BOB),
                grant(GrantStatus.ACTIVE, kind="channel", target=PRIVATE_CHANNEL),
                grant(GrantStatus.REVOKED, subject=BOB, kind="channel", target=PRIVATE_CHANNEL),
            ]
        )
    ledger = SqlGrantLedger(session_factory)
    assert await ledger.sanctioning_grant(GUILD, ALICE, "role", JIT_ROLE) is None
    assert await ledger.sanctioning_grant(GUILD, BOB, "role", JIT_ROLE) == 2
    assert await ledger.sanctioning_grant(GUILD, ALICE, "channel", PRIVATE_CHANNEL) == 3
    assert await ledger.sanctioning_grant(GUILD, BOB, "channel", PRIVATE_CHANNEL) is None
    assert await ledger.sanctioning_grant(GUILD + 1, BOB, "role", JIT_ROLE) is None
