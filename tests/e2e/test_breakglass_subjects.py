"""Break-glass checks who would receive the access like every other way of asking for it."""

from __future__ import annotations

from bot.policy import load_policy
from sandbox.harness import SandboxWorld

POLICY = """
[guild.ops]
approvals_channel = "approvals"
governance_channel = "governance"

[scope.emergency]
kind = "role"
role = "emergency"
breakglass = true
max_duration = "1h"
approvers = ["leads"]
requesters = ["on-call"]
"""

SERVER = {
    "name": "ops",
    "roles": [{"name": "on-call"}, {"name": "leads"}, {"name": "bot-admin"}, {"name": "emergency"}],
    "members": [
        {"name": "olive", "roles": ["on-call"]},
        {"name": "sam", "roles": ["on-call", "emergency"]},  # holds it outside Warden
        {"name": "lee", "roles": ["leads"]},
    ],
    "channels": [{"name": "approvals"}, {"name": "governance"}],
}


async def test_break_glass_never_grants_a_role_held_standing(tmp_path, db_url, clock) -> None:
    path = tmp_path / "ops.toml"
    path.write_text(POLICY, encoding="utf-8")
    async with SandboxWorld(load_policy(path), database_url=db_url, clock=clock) as world:
        g = world.add_guild(SERVER)
        await world.start_bot()
        sam = g.member("sam")

        # (A bots-only scope with break-glass is refused by the policy itself: tests/test_policy.py.)
        assert sam.has_role("emergency"), "start-up took a standing role away"
        # A role already held outside Warden: nothing to add, and nothing Warden may ever remove.
        out = await world.sb.slash(g, sam, "jit breakglass", scope="emergency", reason="prod down")
        assert "already holds the role emergency outside Warden (standing access)" in out.text, out.text
        assert sam.has_role("emergency")

        world.sb.conformance.assert_ok()
