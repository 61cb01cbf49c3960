"""A real discord.py client (CommandTree, views, modal) driven through the sandbox."""

from __future__ import annotations

import asyncio

import discord
import pytest

from sandbox import SandboxError, SandboxTimeout


async def test_slash_ephemeral_reply(sandbox, world, tinybot):
    g, alice, bob = world["g"], world["alice"], world["bob"]
    out = await sandbox.slash(
        g, alice, "jit request", scope="deploy", duration="1h", reason="hotfix", **{"for": bob}
    )
    assert out.response_type == 4
    assert out.ephemeral
    assert out.content == "Requested deploy for bob (1h): hotfix"
    assert tinybot.seen["request"] == ("deploy", "1h", "hotfix", bob.id)
    assert all("Requested" not in m.text for m in sandbox.messages(g.channel("general")))


async def test_autocomplete(sandbox, world, tinybot):
    choices = await sandbox.autocomplete(
        world["g"], world["alice"], "jit request", focused="scope", scope="dep"
    )
    assert [c["value"] for c in choices] == ["deploy", "deploy-prod"]


async def test_typed_options(sandbox, world, tinybot):
    g = world["g"]
    out = await sandbox.slash(
        g, world["alice"], "count", n=3, loud=True, role=world["deployers"], where=world["approvals"]
    )
    assert tinybot.seen["count"] == (3, True, world["deployers"].id, world["approvals"].id)
    assert out.content == "3 True deployers approvals"
    assert not out.ephemeral and out.message in sandbox.messages(g.channel("general"))


async def test_unknown_command_and_option(sandbox, world, tinybot):
    with pytest.raises(SandboxError, match="no command named 'nope'"):
        await sandbox.slash(world["g"], world["alice"], "nope")
    with pytest.raises(SandboxError, match="no option 'colour'"):
        await sandbox.slash(world["g"], world["alice"], "ping", colour="red")


async def test_click_updates_message(sandbox, world, tinybot):
    g, alice, bob = world["g"], world["alice"], world["bob"]
    card = await sandbox.slash(g, alice, "ping")
    assert "Approval needed" in card.text and "Quorum" in card.text
    msg = card.message
    assert msg in sandbox.messages(g.channel("general"))
    out = await sandbox.click(bob, msg, label="Approve")
    assert out.response_type == 7
    assert tinybot.seen["approved_by"] == bob.id
    assert msg.content == "Approved by bob" and msg.edited and msg.components == []


async def test_deferred_update_waits_for_edit(sandbox, world, tinybot):
    card = await sandbox.slash(world["g"], world["alice"], "ping")
    out = await sandbox.click(world["bob"], card.message, label="later")
    assert out.response_type == 6
    assert out.content == "Snoozed" and card.message.content == "Snoozed"


async def test_modal_submit(sandbox, world, tinybot):
    card = await sandbox.slash(world["g"], world["alice"], "ping")
    modal_out = await sandbox.click(world["bob"], card.message, label="Deny")
    assert modal_out.response_type == 9 and modal_out.modal["title"] == "Deny request"
    out = await sandbox.submit_modal(world["bob"], modal_out, Reason="not now")
    assert tinybot.seen["modal_reason"] == "not now"
    assert out.content == "Denied: not now" and out.ephemeral
    with pytest.raises(SandboxError, match="no field"):
        await sandbox.submit_modal(world["bob"], modal_out, colour="red")


async def test_dm_sent_and_closed_dms(sandbox, world, tinybot):
    g, alice, carol = world["g"], world["alice"], world["carol"]
    out = await sandbox.slash(g, alice, "dmme", text="hello")
    assert out.response_type == 5 and out.content == "sent"
    assert [m.content for m in sandbox.dms(alice)] == ["DM: hello"]
    out = await sandbox.slash(g, carol, "dmme", text="hello")
    assert out.content == "cannot DM (50007)"
    member = tinybot.client.get_guild(g.id).get_member(carol.id)
    with pytest.raises(discord.Forbidden) as info:
        await member.send("hi")
    assert info.value.code == 50007
    assert sandbox.dms(carol) == []


async def test_button_in_dm(sandbox, world, tinybot):
    alice = world["alice"]
    user = tinybot.client.get_guild(world["g"].id).get_member(alice.id)
    await user.send("Still needed?", view=_dm_view(tinybot))
    msg = await sandbox.wait_for_message(alice, contains="Still needed?")
    out = await sandbox.click(alice, msg, label="Yes")
    assert out.content == "thanks, in a DM" and out.response_type == 4
    assert tinybot.seen["dm_click"] == (None, alice.id)


def _dm_view(tinybot):
    view = discord.ui.View(timeout=None)
    button = discord.ui.Button(label="Yes", custom_id="attest:yes")

    async def callback(interaction: discord.Interaction) -> None:
        tinybot.seen["dm_click"] = (interaction.guild_id, interaction.user.id)
        await interaction.response.send_message("thanks, in a DM")

    button.callback = callback
    view.add_item(button)
    return view


async def test_role_hierarchy_and_permissions(sandbox, world, tinybot):
    g, alice = world["g"], world["alice"]
    guild = tinybot.client.get_guild(g.id)
    member = guild.get_member(alice.id)
    with pytest.raises(discord.Forbidden) as info:
        await member.add_roles(discord.Object(world["admins"].id), reason="try")
    assert info.value.code == 50013
    assert not alice.has_role("admins")
    warden_role = g.role("Warden")
    with pytest.raises(discord.Forbidden):
        await member.add_roles(discord.Object(warden_role.id))  # managed role
    with pytest.raises(discord.NotFound) as nf:
        await member.add_roles(discord.Object(12345))
    assert nf.value.code == 10011
    assert [e for e in sandbox.audit_log(g) if e["action_type"] == 25] == []


async def test_add_role_with_reason(sandbox, world, tinybot):
    g, alice, deployers = world["g"], world["alice"], world["deployers"]
    guild = tinybot.client.get_guild(g.id)
    member = guild.get_member(alice.id)
    await member.add_roles(guild.get_role(deployers.id), reason="JIT grant #7: ünïcode / ok")
    assert alice.has_role(deployers)
    entry = sandbox.audit_log(g)[0]
    assert entry["action_type"] == 25 and entry["reason"] == "JIT grant #7: ünïcode / ok"
    assert entry["user_id"] == str(sandbox.bot_user.id) and entry["target_id"] == str(alice.id)
    assert entry["changes"] == [
        {"key": "$add", "new_value": [{"id": str(deployers.id), "name": "deployers"}]}
    ]
    _, after = await asyncio.wait_for(tinybot.member_updates.get(), 2)
    assert deployers.id in [r.id for r in after.roles]
    assert deployers.id in [r.id for r in guild.get_member(alice.id).roles]
    audit = await asyncio.wait_for(tinybot.audit_entries.get(), 2)
    assert audit.action is discord.AuditLogAction.member_role_update and audit.reason.startswith("JIT grant")
    entries = [e async for e in guild.audit_logs(limit=10, action=discord.AuditLogAction.member_role_update)]
    assert len(entries) == 1 and entries[0].target.id == alice.id
    await member.remove_roles(guild.get_role(deployers.id), reason="expired")
    assert not alice.has_role(deployers)
    assert sandbox.audit_log(g)[0]["changes"][0]["key"] == "$remove"


async def test_answer_twice_is_rejected(sandbox, world, tinybot):
    out = await sandbox.slash(world["g"], world["alice"], "twice")
    assert out.content == "first"
    for _ in range(100):
        if "twice_error" in tinybot.seen:
            break
        await asyncio.sleep(0.01)
    assert tinybot.seen["twice_error"] == (400, 40060)


async def test_answer_after_deadline(sandbox, world, tinybot):
    sandbox.interaction_deadline = 0.1
    with pytest.raises(SandboxTimeout, match="did not answer /slow"):
        await sandbox.slash(world["g"], world["alice"], "slow", seconds=0.2, timeout=0.5)
    for _ in range(100):
        if "slow_error" in tinybot.seen:
            break
        await asyncio.sleep(0.01)
    assert tinybot.seen["slow_error"] == (404, 10062)


async def test_slash_in_dm_and_member_join(sandbox, world, tinybot):
    await sandbox.wait_until_ready(1)
    alice = world["alice"]
    out = await sandbox.slash(None, alice, "ping")
    assert out.content == "Pong" and out.message.guild_id is None
    assert out.message in sandbox.messages(sandbox.dm_channel(alice))
    clicked = await sandbox.click(alice, out.message, label="Approve")
    assert clicked.message.content == "Approved by alice"
    newbie = world["g"].add_member("erin")
    for _ in range(100):
        if tinybot.client.get_guild(world["g"].id).get_member(newbie.id):
            break
        await asyncio.sleep(0.01)
    assert tinybot.client.get_guild(world["g"].id).get_member(newbie.id) is not None
