"""The REST operations Warden uses, and admin actions as the bot sees them (events + audit log)."""

from __future__ import annotations

import asyncio

import discord


async def _audit(tinybot, action, wait_s=2.0):
    while True:
        entry = await asyncio.wait_for(tinybot.audit_entries.get(), wait_s)
        if entry.action is action:
            return entry


async def test_channel_overwrites(sandbox, world, tinybot):
    g, alice, approvals = world["g"], world["alice"], world["approvals"]
    guild = tinybot.client.get_guild(g.id)
    channel = guild.get_channel(approvals.id)
    await sandbox.admin.set_overwrite(g, approvals, world["deployers"], allow=["send_messages"])
    await _audit(tinybot, discord.AuditLogAction.overwrite_create)
    member = guild.get_member(alice.id)
    await channel.set_permissions(
        member, overwrite=discord.PermissionOverwrite(view_channel=True), reason="JIT channel grant"
    )
    assert {o.id for o in approvals.overwrites} == {world["deployers"].id, alice.id}  # others undisturbed
    entry = sandbox.audit_log(g)[0]
    assert (
        entry["action_type"] == 13
        and entry["options"]["type"] == "1"
        and entry["reason"] == "JIT channel grant"
    )
    await channel.set_permissions(
        member, overwrite=discord.PermissionOverwrite(view_channel=True, embed_links=True)
    )
    assert sandbox.audit_log(g)[0]["action_type"] == 14
    await channel.set_permissions(member, overwrite=None, reason="expired")
    assert [o.id for o in approvals.overwrites] == [world["deployers"].id]
    assert sandbox.audit_log(g)[0]["action_type"] == 15
    try:  # the bot cannot grant a permission it lacks itself
        await channel.set_permissions(member, overwrite=discord.PermissionOverwrite(ban_members=True))
    except discord.Forbidden as e:
        assert e.code == 50013
    else:
        raise AssertionError("expected Forbidden")


async def test_webhooks_integrations_and_bots(sandbox, world, tinybot):
    g = world["g"]
    guild = tinybot.client.get_guild(g.id)
    hook = await sandbox.admin.create_webhook(g, world["approvals"], "ci-hook")
    await _audit(tinybot, discord.AuditLogAction.webhook_create)
    helper = await sandbox.admin.add_bot(g, "helperbot", permissions=["manage_messages", "kick_members"])
    entry = await _audit(tinybot, discord.AuditLogAction.bot_add)
    assert entry.target.id == helper.id
    for _ in range(100):
        if guild.get_member(helper.id):
            break
        await asyncio.sleep(0.01)
    assert guild.get_member(helper.id).bot
    hooks = await guild.webhooks()
    assert [h.name for h in hooks] == ["ci-hook"]
    await hooks[0].delete(reason="dormant")
    assert g.webhooks == [] and sandbox.audit_log(g)[0]["action_type"] == 52
    assert sandbox.audit_log(g)[0]["target_id"] == str(hook.id)
    integrations = await guild.integrations()
    names = {i.name for i in integrations}
    assert {"Warden", "helperbot"} <= names
    target = next(i for i in integrations if i.name == "helperbot")
    await target.delete(reason="attestation: revoke")
    assert sandbox.audit_log(g)[0]["action_type"] == 82
    assert g.get_member(helper.id) is None and g.get_role("helperbot") is None


async def test_role_permissions_and_member_edit(sandbox, world, tinybot):
    g, deployers, bob = world["g"], world["deployers"], world["bob"]
    guild = tinybot.client.get_guild(g.id)
    await sandbox.admin.set_role_permissions(g, deployers, ["manage_messages", "manage_roles"])
    drift = await _audit(tinybot, discord.AuditLogAction.role_update)
    assert drift.after.permissions.manage_roles and not drift.before.permissions.manage_roles
    for _ in range(100):
        if guild.get_role(deployers.id).permissions.manage_roles:
            break
        await asyncio.sleep(0.01)
    assert guild.get_role(deployers.id).permissions.manage_roles
    await guild.get_role(deployers.id).edit(
        permissions=discord.Permissions(manage_messages=True), reason="revert"
    )
    assert deployers.permissions == discord.Permissions(manage_messages=True).value
    member = await guild.fetch_member(bob.id)
    await member.edit(roles=[], reason="cleanup")
    assert bob.roles == []
    entries = [e async for e in guild.audit_logs(limit=5, user=guild.me)]
    assert [e.action for e in entries][:2] == [
        discord.AuditLogAction.member_role_update,
        discord.AuditLogAction.role_update,
    ]
    assert all(e.user.id == sandbox.bot_user.id for e in entries)


async def test_reads_and_messages(sandbox, world, tinybot):
    g = world["g"]
    client = tinybot.client
    fetched = await client.fetch_guild(g.id)
    assert fetched.name == "acme"
    roles = await fetched.fetch_roles()
    assert [r.name for r in sorted(roles)][:1] == ["@everyone"]
    assert {c.name for c in await fetched.fetch_channels()} == {"general", "approvals"}
    channel = await client.fetch_channel(world["approvals"].id)
    msg = await channel.send("card", embed=discord.Embed(title="Request #1"))
    again = await channel.fetch_message(msg.id)
    assert again.embeds[0].title == "Request #1"
    await again.edit(content="card (approved)")
    smsg = sandbox.messages(world["approvals"])[0]
    assert smsg.edited and "approved" in smsg.text and "Request #1" in smsg.text
    found = await sandbox.wait_for_message(world["approvals"], contains="(approved)")
    assert found is smsg
    history = [m.content async for m in channel.history(limit=10)]
    assert history == ["card (approved)"]
    await again.delete()
    assert sandbox.messages(world["approvals"]) == []


async def test_operation_count(sandbox, world, tinybot):
    await test_reads_and_messages(sandbox, world, tinybot)
    assert len(sandbox.conformance.operations) >= 10
