"""Interaction records and what a test sees of the bot's answer (:class:`InteractionOutcome`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sandbox.models import SChannel, SGuild, SMember, SMessage, SUser, render_text

# interaction types
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5

# callback types
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9


@dataclass(eq=False)
class InteractionRecord:
    id: int
    token: str
    type: int
    user: SUser
    member: SMember | None
    guild: SGuild | None
    channel: SChannel
    created_loop: float
    created_at: dt.datetime
    name: str = ""  # command name / custom_id, for messages
    source_message: SMessage | None = None  # component / modal-from-component interactions
    payload: dict[str, Any] = field(default_factory=dict)
    response_type: int | None = None
    response_data: dict[str, Any] | None = None
    original: SMessage | None = None  # the message @original designates
    followups: list[SMessage] = field(default_factory=list)
    original_edits: int = 0
    responded: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # deferred → follow-up/edit arrived
    # Loop times (the clock of ``created_loop``) for benchmarks: the acknowledgement, and the first
    # thing the person can read (a non-deferred answer, or the first follow-up/edit of a deferred one).
    acked_loop: float | None = None
    answered_loop: float | None = None

    def acknowledge(self) -> None:
        if self.acked_loop is None:
            self.acked_loop = asyncio.get_running_loop().time()
        self.responded.set()

    def settle(self) -> None:
        if self.answered_loop is None:
            self.answered_loop = asyncio.get_running_loop().time()
        self.settled.set()

    @property
    def deferred(self) -> bool:
        return self.response_type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE)


class InteractionOutcome:
    """The bot's answer to one interaction, live (later edits/follow-ups show up here)."""

    def __init__(self, record: InteractionRecord) -> None:
        self._rec = record

    @property
    def interaction_id(self) -> int:
        return self._rec.id

    @property
    def record(self) -> InteractionRecord:
        return self._rec

    @property
    def response_type(self) -> int | None:
        return self._rec.response_type

    @property
    def deferred(self) -> bool:
        return self._rec.deferred

    @property
    def followups(self) -> list[SMessage]:
        return list(self._rec.followups)

    @property
    def message(self) -> SMessage | None:
        """The message this answer shows: response / updated / edited-original, else the first follow-up."""
        rec = self._rec
        if rec.response_type in (AUTOCOMPLETE_RESULT, MODAL, None):
            return None
        if rec.response_type == DEFERRED_CHANNEL_MESSAGE and rec.original_edits == 0 and rec.followups:
            return rec.followups[0]
        if rec.response_type == DEFERRED_UPDATE_MESSAGE and rec.original_edits == 0 and rec.followups:
            return rec.followups[0]
        return rec.original

    @property
    def content(self) -> str:
        msg = self.message
        return msg.content if msg is not None else ""

    @property
    def embeds(self) -> list[dict]:
        msg = self.message
        return list(msg.embeds) if msg is not None else []

    @property
    def components(self) -> list[dict]:
        if self._rec.response_type == MODAL and self._rec.response_data:
            return list(self._rec.response_data.get("components") or [])
        msg = self.message
        return list(msg.components) if msg is not None else []

    @property
    def ephemeral(self) -> bool:
        msg = self.message
        if msg is not None:
            return msg.ephemeral
        data = self._rec.response_data or {}
        return bool((data.get("flags") or 0) & 64)

    @property
    def modal(self) -> dict | None:
        if self._rec.response_type == MODAL:
            return self._rec.response_data
        return None

    @property
    def choices(self) -> list[dict]:
        if self._rec.response_type == AUTOCOMPLETE_RESULT and self._rec.response_data:
            return list(self._rec.response_data.get("choices") or [])
        return []

    @property
    def text(self) -> str:
        msg = self.message
        if msg is not None:
            return msg.text
        modal = self.modal
        if modal is not None:
            return render_text(modal.get("title"), [], modal.get("components") or [])
        return ""

    @property
    def all_text(self) -> str:
        """Text of the answer and of every follow-up."""
        parts = [self.text] + [m.text for m in self._rec.followups if m is not self.message]
        return "\n".join(p for p in parts if p)

    def __repr__(self) -> str:
        return (
            f"<InteractionOutcome type={self.response_type} ephemeral={self.ephemeral} "
            f"text={self.text[:80]!r}>"
        )
