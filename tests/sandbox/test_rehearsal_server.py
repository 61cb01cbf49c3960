"""The rehearsal server for generated policies: every name and id the policy uses exists, and every
scope has a cast that can play it (no run here: tests/sandbox/test_policies.py plays them)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.policy import parse_policy
from sandbox import SandboxDiscord
from sandbox.harness import build_guild, rehearsal_server

ROLE_NAMES = ["engineers", "Sec Leads", "@mods", "on-call", "DJ"]
ROLE_IDS = [1146049500000000001, 1146049500000000002, 1146049500000000003]
USER_IDS = [1146049600000000001, 1146049600000000002, 1146049600000000003]

role_ref = st.sampled_from([*ROLE_NAMES, *ROLE_IDS])
approver = st.one_of(
    role_ref, st.sampled_from([f"user:{u}" for u in USER_IDS]), st.builds(lambda r: f"role:{r}", role_ref)
)
requester = st.one_of(role_ref, st.just("@everyone"))


@st.composite
def scopes(draw: Any, n: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["role", "channel", "token"]))
    approvers = draw(st.lists(approver, min_size=1, max_size=3, unique=True))
    users = {a for a in approvers if isinstance(a, str) and a.startswith("user:")}
    quorum = draw(st.integers(1, 3))
    if len(users) == len(approvers):
        quorum = min(quorum, len(users))
    scope: dict[str, Any] = {
        "kind": kind,
        "max_duration": draw(st.sampled_from(["30m", "2h", "1d"])),
        "approvers": approvers,
        "approvals_required": quorum,
        "requesters": draw(st.lists(requester, min_size=1, max_size=2, unique=True)),
        "breakglass": draw(st.booleans()),
    }
    if kind == "role":
        scope["role"] = draw(st.sampled_from([f"granted-{n}", 1146049700000000000 + n]))
        # Break-glass is for the member using it: bots-only break-glass scopes are refused by the policy.
        scope["subjects"] = draw(
            st.sampled_from(["members", "both"] if scope["breakglass"] else ["members", "bots", "both"])
        )
    elif kind == "channel":
        scope["channel"] = draw(st.sampled_from([f"room-{n}", 1146049800000000000 + n]))
        scope["allow"] = ["view_channel", "send_messages"]
    if draw(st.booleans()):
        scope["auto_approve"] = [{"members_of": draw(requester), "max_duration": "30m"}]
    return scope


@st.composite
def policies(draw: Any) -> dict[str, Any]:
    guild_key = draw(st.sampled_from(["acme", "1146049323987443712"]))
    channels = draw(st.sampled_from([("approvals", "governance"), (1146049400000000001, "#log")]))
    count = draw(st.integers(1, 4))
    return {
        "guild": {guild_key: {"approvals_channel": channels[0], "governance_channel": channels[1]}},
        "scope": {f"s{n}": draw(scopes(n)) for n in range(count)},
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policies())
async def test_every_reference_exists_and_every_cast_can_play(data: dict[str, Any]) -> None:
    policy = parse_policy(data, "generated")
    rehearsal = rehearsal_server(policy)
    (spec,) = rehearsal.guilds
    roles = {r["name"].casefold() for r in spec["roles"]} | {r.get("id") for r in spec["roles"]}
    channels = {c["name"].casefold() for c in spec["channels"]} | {c.get("id") for c in spec["channels"]}
    members = {m["name"]: m for m in spec["members"]}
    assert len(members) == len(spec["members"]), "member names are unique"
    for scope in policy.scopes:
        for ref in [*(a.ref for a in scope.approvers if a.kind != "user"), *scope.requesters]:
            if ref != "@everyone" and ref not in USER_IDS:
                assert (ref.removeprefix("@").casefold() if isinstance(ref, str) else ref) in roles, ref
        if scope.kind == "channel":
            ref = scope.channel
            assert (ref.casefold() if isinstance(ref, str) else ref) in channels
    for cast in rehearsal.casts:
        assert cast.requester in members
        assert cast.requester not in cast.approvers and len(set(cast.approvers)) == len(cast.approvers)
        eligible_users = {f"user-{a.ref}" for a in cast.scope.approvers if a.kind == "user"} - {
            cast.requester
        }
        has_role_approver = any(a.kind != "user" for a in cast.scope.approvers)
        wanted = (
            cast.scope.approvals_required
            if has_role_approver
            else min(cast.scope.approvals_required, len(eligible_users))
        )
        assert len(cast.approvers) == wanted, (cast.approvers, cast.scope)
        if cast.subject is not None:
            assert members[cast.subject].get("bot") is True
            assert "server-admins" in members[cast.requester]["roles"]
        if cast.outsider is not None:
            assert members[cast.outsider]["roles"] == []
    # ... and the sandbox builds it, keeping every id the policy gives.
    async with SandboxDiscord() as sb:
        guild = build_guild(sb, spec)
        for table, found in (
            ("roles", guild.get_role),
            ("channels", guild.get_channel),
            ("members", guild.get_member),
        ):
            for item in spec[table]:
                if "id" in item:
                    assert found(item["id"]) is not None and found(item["id"]).name == item["name"]
        if "id" in spec:
            assert guild.id == spec["id"]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policies())
async def test_generated_policies_are_played_through(data: dict[str, Any]) -> None:
    """A few generated policies, played whole by the real bot: every expectation holds."""
    from sandbox.scenario import parse_scenario, run_scenario
    from sandbox.walkthrough import policy_walkthrough

    scenario = parse_scenario(policy_walkthrough(data, "generated"), "generated")
    lines: list[str] = []
    result = await run_scenario(scenario, lines.append)
    assert result.passed, "\n".join(lines)
