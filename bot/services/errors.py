"""Expected refusals. Each carries the sentence the person sees: what is wrong and what to do.

Cogs and views never build refusal text themselves; the one error path renders these
ephemerally. Anything that is not a WardenError is a bug or an outage: logged, and
answered with a short apology.
"""

from __future__ import annotations

from bot.db.models import MAX_ROW_ID


class WardenError(Exception):
    """A refusal the user can act on. Nothing was written when one is raised."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(WardenError):
    """The request itself is malformed (unknown scope, bad duration, missing reason ...)."""


class NotAllowed(WardenError):
    """The person may not do this (not a requester, not an approver, self-approval ...)."""


class AlreadyDecided(WardenError):
    """The request or grant is no longer in a state that accepts this action."""


class NotFound(WardenError):
    """The id names no request or grant in this server."""


class TooSoon(WardenError):
    """Abuse guard: too many pending requests or requesting faster than the cooldown."""


class CannotGrant(WardenError):
    """Discord would refuse (hierarchy, managed role, ceiling, missing permission)."""


class Unavailable(WardenError):
    """The database (or another dependency) is down; fail closed: nothing changed."""

    def __init__(
        self,
        message: str = "Warden is unavailable right now (its database is not answering); "
        "nothing was changed. Try again in a minute, or tell a server admin.",
    ) -> None:
        super().__init__(message)


def row_id(value: int, what: str) -> int:
    """A request or grant id as typed or clicked; NotFound when no row can have it.

    A number above ``MAX_ROW_ID`` would fail in the database (PostgreSQL's integer keys) instead
    of being refused as what it is, an id that names nothing.
    """
    if not 1 <= value <= MAX_ROW_ID:
        raise NotFound(f"There is no {what} #{value} in this server. Check the id with `/jit mine`.")
    return value
