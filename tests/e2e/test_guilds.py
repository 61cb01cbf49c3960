"""Several guilds at once, each with its own policy, served by one bot."""

from __future__ import annotations

import copy
import tomllib

from bot.policy import parse_policy
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld

GLOBEX = {
    "name": "globex",
    "roles": [{"name": "staff"}, {"name": "mods"}, {"name": "vip", "permissions": ["send_messages"]}],
    "members": [{"name": "hank", "roles": ["staff"]}, {"name": "mona", "roles": ["mods"]}],
    "channels": [{"name": "requests"}, {"name": "audit"}],
}


async def test_each_guild_uses_its_own_scopes_channels_and_approvers(db_url, clock):
    data = tomllib.loads(EXAMPLE_CONFIG.read_text())
    for scope in data["scope"].values():
        scope["guild"] = "acme"
    data["guild"]["globex"] = {"approvals_channel": "requests", "governance_channel": "audit"}
    data["scope"]["vip"] = {
        "guild": "globex",
        "kind": "role",
        "role": "vip",
        "max_duration": "1d",
        "approvers": ["mods"],
        "requesters": ["staff"],
    }
    policy = parse_policy(data, "two guilds")
    async with SandboxWorld(policy, database_url=db_url, clock=clock) as world:
        acme, globex = world.add_guild(copy.deepcopy(ACME)), world.add_guild(GLOBEX)
        await world.start_bot()
        hank = globex.member("hank")
        choices = await world.sb.autocomplete(globex, hank, "jit request", focused="scope", scope="")
        assert [c["value"] for c in choices] == ["vip"]
        out = await world.sb.slash(globex, hank, "jit request", scope="deploy", duration="1h", reason="x")
        assert "There is no scope named `deploy`" in out.text
        out = await world.sb.slash(
            globex, hank, "jit request", scope="vip", duration="1h", reason="launch party"
        )
        assert "waiting for approval" in out.text
        card = world.sb.messages(globex.channel("requests"))[0]
        await world.sb.click(globex.member("mona"), card, "Approve")
        assert hank.has_role("vip")
        assert world.sb.messages(acme.channel("approvals")) == []
        await world.settle()
        assert world.sb.messages(globex.channel("audit"))
        assert world.sb.messages(acme.channel("governance")) == []
