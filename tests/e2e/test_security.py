"""Probes from the security review: each test reproduces an attack or fault that once gave
access beyond what was approved, or took away what Warden did not give."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest
from sqlalchemy import func, select

from bot.db.models import AccessRequest, Grant
from bot.policy import Policy, parse_policy
from sandbox.harness import EXAMPLE_CONFIG

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11


def card_in(world, request_id: int):
    msgs = [m for m in world.sb.messages(world.guild.channel("approvals")) if f"#{request_id}" in m.text]
    assert msgs, f"no approval card for request #{request_id}"
    return msgs[0]


async def count(world, model) -> int:
    async with world.bot.session_factory() as s:
        return await s.scalar(select(func.count()).select_from(model))


# ---- 1. eligibility holds for the subject as well as the requester ---------------------------


async def test_auto_approval_does_not_extend_to_an_ineligible_subject(world):
    g = world.guild
    out = await world.sb.slash(
        g,
        g.member("dave"),
        "jit request",
        scope="deploy",
        duration="30m",
        reason="hotfix",
        **{"for": g.member("erin")},
    )
    assert out.ephemeral
    assert not g.member("erin").has_role("deployers")
    assert "erin" in out.text or str(g.member("erin").id) in out.text
    assert "may not receive" in out.text
    assert await count(world, Grant) == 0
    assert await count(world, AccessRequest) == 0


async def test_auto_approval_needs_the_subject_to_qualify_too(world):
    """alice may receive deploy (an engineer) but is not on call: dave's request for her is voted on."""
    g = world.guild
    out = await world.sb.slash(
        g,
        g.member("dave"),
        "jit request",
        scope="deploy",
        duration="30m",
        reason="pairing",
        **{"for": g.member("alice")},
    )
    assert "waiting for approval" in out.text, out.text
    assert not g.member("alice").has_role("deployers")


async def test_breakglass_checks_the_requester_and_grants_only_to_them(world):
    g = world.guild
    out = await world.sb.slash(g, g.member("erin"), "jit breakglass", scope="breakglass-admin", reason="fire")
    assert "You may not request `breakglass-admin`" in out.text
    assert not g.member("erin").has_role("emergency")


async def test_bot_subject_needs_an_admin_or_its_owner(world):
    """Any engineer may not upgrade any bot: only an admin (Manage Server) or the bot's owner may ask."""
    g = world.guild
    out = await world.sb.slash(
        g,
        g.member("alice"),
        "jit request",
        scope="bot-webhooks",
        duration="1h",
        reason="ci",
        **{"for": g.member("ci-bot")},
    )
    assert "owner" in out.text and "admin" in out.text.lower(), out.text
    assert await count(world, AccessRequest) == 0


# ---- 4. Warden never takes away what it did not give -----------------------------------------


def _hand_given_jit_roles_allowed() -> Policy:
    """The example policy, with the policy choice that JIT roles handed out by hand are only
    alerted on (by default the audit listener takes them back: rule jit-role-by-hand)."""
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["rule"].append(
        {
            "id": "jit-role-by-hand",
            "when": {"event": "member_role_update", "role_is_jit": True},
            "outcome": "alert",
        }
    )
    return parse_policy(data)


@pytest.mark.parametrize("policy", [_hand_given_jit_roles_allowed()], ids=["hand-given-jit-alerts"])
async def test_a_standing_role_is_not_requested_and_never_removed(world):
    g = world.guild
    alice = g.member("alice")
    await world.sb.admin.add_role(g, alice, g.role("deployers"))
    out = await world.sb.slash(g, alice, "jit request", scope="deploy", duration="1h", reason="x")
    assert "already" in out.text and "deployers" in out.text, out.text
    assert await count(world, AccessRequest) == 0
    await world.advance(dt.timedelta(hours=9))
    assert alice.has_role("deployers")


async def test_channel_grant_keeps_and_restores_an_existing_member_overwrite(world):
    g = world.guild
    erin = g.member("erin")
    incident = g.channel("incident")
    # erin is muted in the incident channel by a moderator: deny send_messages, allow view_channel.
    await world.sb.admin.set_overwrite(g, incident, erin, allow=["view_channel"], deny=["send_messages"])
    before = incident.overwrite_for(erin.id)
    assert before is not None
    saved = (before.allow, before.deny)
    await world.sb.slash(g, erin, "jit request", scope="incident-room", duration="1h", reason="sev1")
    await world.sb.click(g.member("bob"), card_in(world, 1), "Approve")
    during = incident.overwrite_for(erin.id)
    assert during is not None and during.allow & VIEW_CHANNEL and during.allow & SEND_MESSAGES
    await world.advance(dt.timedelta(hours=1))
    after = incident.overwrite_for(erin.id)
    assert after is not None, "the moderator's overwrite was deleted at expiry"
    assert (after.allow, after.deny) == saved


# ---- 5. names resolve unambiguously ----------------------------------------------------------


async def test_a_copied_role_name_does_not_make_an_approver(world):
    g = world.guild
    fake = await world.sb.admin.create_role(g, "Sec-Leads")
    await world.sb.admin.add_role(g, g.member("erin"), fake)
    await world.settle()
    await world.sb.slash(g, g.member("alice"), "jit request", scope="deploy", duration="1h", reason="x")
    out = await world.sb.click(g.member("erin"), card_in(world, 1), "Approve")
    assert "not counted" in out.text or "ambiguous" in out.text, out.text
    assert "0 of 2 needed" in card_in(world, 1).text


# ---- 8. smaller ------------------------------------------------------------------------------


async def test_user_text_is_escaped_on_cards(world):
    g = world.guild
    reason = "**urgent** [click](https://evil.example) @everyone <@&1>"
    await world.sb.slash(g, g.member("alice"), "jit request", scope="deploy", duration="1h", reason=reason)
    card = card_in(world, 1)
    assert "[click](https://evil.example)" not in card.text
    assert "**urgent**" not in card.text
