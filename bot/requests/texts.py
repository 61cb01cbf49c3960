"""What requesters are told in DMs when their request ends without a grant."""

from __future__ import annotations

from bot.db.models import AccessRequest
from bot.escape import user_text


def request_denied_dm(req: AccessRequest, scope_id: str, guild_name: str) -> str:
    return (
        f"Your request #{req.id} for **{scope_id}** in **{guild_name}** was denied by "
        f"<@{req.decided_by}>: {user_text(req.decision_note)}"
    )


def request_expired_dm(req: AccessRequest, guild_name: str | None) -> str:
    return (
        f"Nobody decided your request #{req.id} for **{req.scope_id}**"
        + (f" in **{guild_name}**" if guild_name else "")
        + " in time, so it expired. You can ask again with `/jit request`."
    )
