"""Kill points: named steps where a crash campaign makes the process SIGKILL itself.

`warden run` with ``WARDEN_KILL_AT=<point>`` (``Tuning.kill_at``) dies, with no clean-up at all,
the first time it reaches that step; the crash campaign (``python -m sandbox.crash``) restarts it
and checks that nothing the process promised was lost. Unset, a kill point is one comparison with
None. docs/reliability.md says what each point interrupts and how Warden recovers.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

# Every kill point, in the order a grant's life reaches them.
KILL_POINTS: tuple[str, ...] = (
    # /jit request: the request committed (with auto-approval, its grant row too); no card posted, apply
    # not started.
    "request.create.after_commit",
    # the vote that completes a quorum (or denies): vote, decision and grant row committed; card not yet told.
    "approval.vote.after_commit",
    # apply: Discord's prior state read, the claim (clock, prior state) not yet written.
    "grant.apply.before_claim",
    # apply: claimed (APPLYING, clock started) and committed; Discord not yet changed.
    "grant.apply.before_discord",
    # apply: Discord changed; the grant not yet marked active.
    "grant.apply.after_discord",
    # apply: active and `applied` recorded; the holder not yet told.
    "grant.apply.after_commit",
    # /jit extend: the extension request committed; its card not yet posted.
    "request.extend.after_commit",
    # the vote that approves an extension: the grant lengthened and committed; nobody told yet.
    "approval.extend.after_commit",
    # expiry: claimed (REMOVING) and `expired` recorded; Discord not yet changed.
    "grant.expire.before_discord",
    # expiry: removed in Discord; the grant not yet marked expired.
    "grant.expire.after_discord",
    # expiry: marked expired; the holder not yet told.
    "grant.expire.after_commit",
    # revoke: claimed (REMOVING) and `revoked` recorded; Discord not yet changed.
    "grant.revoke.before_discord",
    # revoke: removed in Discord; the grant not yet marked revoked.
    "grant.revoke.after_discord",
    # revoke: marked revoked; the holder not yet told.
    "grant.revoke.after_commit",
)


def kill_point_problem(point: str | None) -> str | None:
    """Why ``point`` is not a kill point (one line listing the valid ones), or None."""
    if point is None or point in KILL_POINTS:
        return None
    return f"'{point}' is not a kill point; use one of: {', '.join(KILL_POINTS)}"


class KillSwitch:
    """``reached(point)``: SIGKILL this process if ``point`` is the one configured."""

    __slots__ = ("_at",)

    def __init__(self, at: str | None = None) -> None:
        problem = kill_point_problem(at)
        if problem is not None:
            raise ValueError(problem)
        self._at = at

    @property
    def at(self) -> str | None:
        return self._at

    def reached(self, point: str) -> None:
        if self._at is None or point != self._at:
            return
        log.warning("kill point %s reached: this process kills itself (crash campaign)", point)
        os.kill(os.getpid(), signal.SIGKILL)


NO_KILL = KillSwitch()
