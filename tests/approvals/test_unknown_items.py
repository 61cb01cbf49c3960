"""A `warden:` click or select that no registered item matches is answered; a registered one is not."""

from __future__ import annotations

from types import SimpleNamespace

import discord

from bot.approvals.buttons import VoteButton, is_unknown_item
from bot.attest.buttons import NewOwnerSelect


def interaction(custom_id: str) -> discord.Interaction:
    client = SimpleNamespace(
        item_templates={item.__discord_ui_compiled_template__ for item in (VoteButton, NewOwnerSelect)}
    )
    return SimpleNamespace(  # type: ignore[return-value]
        type=discord.InteractionType.component, data={"custom_id": custom_id}, client=client
    )


def test_every_registered_item_is_known_selects_too() -> None:
    assert not is_unknown_item(interaction("warden:vote:7:approve"))
    # The attestation's new-owner picker is a select, not a button: it was taken for unknown.
    assert not is_unknown_item(interaction("warden:attest-to:7"))
    assert is_unknown_item(interaction("warden:vote:7:maybe"))
    assert is_unknown_item(interaction("warden:nothing"))
    assert not is_unknown_item(interaction("someone-elses-bot:1"))
