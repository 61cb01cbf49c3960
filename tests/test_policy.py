import copy
import datetime as dt
from pathlib import Path

import pytest

from bot.policy import (
    Approver,
    AttestationPolicy,
    AutoApprove,
    PolicyError,
    Scope,
    load_policy,
    parse_policy,
    permissions_from_names,
    review_policy,
)

EXAMPLE = Path(__file__).parents[1] / "config.example.toml"

BASE = {
    "guild": {"acme": {"approvals_channel": "approvals", "governance_channel": "governance"}},
    "scope": {
        "deploy": {
            "kind": "role",
            "role": "deployers",
            "max_duration": "8h",
            "approvers": ["sec-leads"],
            "requesters": ["engineers"],
        }
    },
}


def data(**changes):
    """BASE with ``{"scope.deploy.kind": "x"}``-style changes (value None deletes the key)."""
    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = d
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return d


def problems(d) -> list[str]:
    with pytest.raises(PolicyError) as e:
        parse_policy(d)
    assert str(e.value) == "\n".join(e.value.problems)
    assert "pydantic" not in str(e.value)
    return e.value.problems


def one_problem(d) -> str:
    found = problems(d)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ the example


def test_example_loads():
    policy = load_policy(EXAMPLE)
    assert [g.key for g in policy.guilds] == ["acme"]
    ids = {s.id for s in policy.scopes}
    assert {"deploy", "incident-room", "bot-webhooks", "breakglass-admin"} <= ids
    gp = policy.guilds[0]
    deploy = policy.scope(gp, "deploy")
    assert deploy is not None
    assert deploy.approvals_required == 2
    assert deploy.auto_approve == (AutoApprove(members_of="on-call", max_duration=dt.timedelta(hours=1)),)
    assert "manage_messages" in deploy.permission_ceiling
    room = policy.scope(gp, "incident-room")
    assert room.kind == "channel" and room.channel == "incident"
    assert room.allow == {"view_channel", "send_messages"}
    bots = policy.scope(gp, "bot-webhooks")
    assert bots.allows_bots() and not bots.allows_members()
    assert policy.scope(gp, "breakglass-admin").breakglass
    assert policy.scope(gp, "breakglass-admin").max_duration == dt.timedelta(hours=1)
    assert policy.rules[0].id == "admin-permission-added"
    assert policy.rules[0].outcome == "block"
    assert policy.rules[0].controls == ("SOC2:CC6.3", "ISO27001:A.8.2")
    assert policy.runtime.log_level == "INFO"
    assert policy.source == str(EXAMPLE)


def test_example_documents_every_key():
    text = EXAMPLE.read_text()
    for model in (Scope,):
        for field in model.model_fields:
            if field != "id":
                assert f"\n{field} =" in text, field
    docs = (EXAMPLE.parent / "docs" / "configuration.md").read_text()
    extra = ["pending_ttl", "ping_role", "signing_key_path", "WARDEN_TOKEN_FILE"]
    for field in [*Scope.model_fields, *extra]:
        assert field in docs, field


# ------------------------------------------------------------------ defaults and lookups


def test_safe_defaults():
    policy = parse_policy(BASE)
    s = policy.scopes[0]
    assert s.self_approval is False
    assert s.reason_required is True
    assert s.deny_ends_request is True
    assert s.breakglass is False
    assert s.approvals_required == 1
    assert s.subjects == "members" and s.allows_members() and not s.allows_bots()
    assert s.default_duration == dt.timedelta(hours=1)
    assert s.permission_ceiling is None
    assert s.guild == "acme"  # filled in: only one guild
    gp = policy.guilds[0]
    assert gp.pending_ttl == dt.timedelta(hours=4)
    assert gp.expiry_reminder == dt.timedelta(minutes=15)
    assert gp.max_pending_per_member == 3
    assert gp.request_cooldown == dt.timedelta(seconds=30)
    assert gp.ping_role is None
    assert policy.rules == ()
    assert policy.runtime.database_url is None


def test_default_duration_never_exceeds_short_max():
    s = parse_policy(data(scope__deploy__max_duration="20m")).scopes[0]
    assert s.default_duration == dt.timedelta(minutes=20)


def test_guild_lookup_by_id_and_name():
    d = {
        "guild": {
            "123456789012345678": {"approvals_channel": 1, "governance_channel": "2"},
            "Acme": {"approvals_channel": "approvals", "governance_channel": "governance"},
        },
        "scope": {
            "deploy": {**BASE["scope"]["deploy"], "guild": "acme"},
            "other": {**BASE["scope"]["deploy"], "guild": 123456789012345678},
        },
    }
    policy = parse_policy(d)
    by_id = policy.guild_policy(123456789012345678, "whatever")
    assert by_id.key == "123456789012345678"
    assert by_id.approvals_channel == 1 and by_id.governance_channel == 2  # digit strings are ids
    by_name = policy.guild_policy(42, "ACME")
    assert by_name.key == "Acme"
    assert by_name.matches(42, "acme") and not by_name.matches(42, "other")
    assert policy.guild_policy(42, "nope") is None
    assert [s.id for s in policy.scopes_for(by_name)] == ["deploy"]
    assert [s.id for s in policy.scopes_for(by_id)] == ["other"]
    assert policy.scope(by_name, "deploy").guild == "Acme"  # normalised to the guild's key
    assert policy.scope(by_name, "DEPLOY").id == "deploy"
    assert policy.scope(by_name, "other") is None
    assert policy.scope(by_id, "missing") is None


def test_id_match_wins_over_name_match():
    d = {
        "guild": {
            "Acme": {"approvals_channel": "a", "governance_channel": "g"},
            "42": {"approvals_channel": "a", "governance_channel": "g"},
        },
    }
    assert parse_policy(d).guild_policy(42, "acme").key == "42"


def test_approvers_and_requesters_parsing():
    policy = parse_policy(
        data(
            scope__deploy__approvers=["sec-leads", "user:123", 456, "789", "role:999", "role:ops"],
            scope__deploy__requesters=["@everyone", "user:5", 77, "devs"],
        )
    )
    s = policy.scopes[0]
    assert s.approvers == (
        Approver(kind="role", ref="sec-leads"),
        Approver(kind="user", ref=123),
        Approver(kind="any", ref=456),
        Approver(kind="any", ref=789),
        Approver(kind="role", ref=999),
        Approver(kind="role", ref="ops"),
    )
    assert s.requesters == ("@everyone", 5, 77, "devs")


def test_models_are_frozen():
    s = parse_policy(BASE).scopes[0]
    with pytest.raises(ValueError):
        s.max_duration = dt.timedelta(days=99)  # type: ignore[misc]


def test_permission_names_normalised():
    s = parse_policy(
        data(
            scope__deploy__kind="channel",
            scope__deploy__role=None,
            scope__deploy__channel="incident",
            scope__deploy__allow=["View Channel", "send-messages"],
        )
    ).scopes[0]
    assert s.allow == {"view_channel", "send_messages"}
    assert permissions_from_names(s.allow).send_messages


def test_runtime_section():
    policy = parse_policy(
        data(
            warden={
                "database_url": "postgresql+asyncpg://w@db/w",
                "signing_key_path": "k.key",
                "log_level": "debug",
            }
        )
    )
    assert policy.runtime.database_url == "postgresql+asyncpg://w@db/w"
    assert policy.runtime.signing_key_path == Path("k.key")
    assert policy.runtime.log_level == "DEBUG"


# ------------------------------------------------------------------ error messages


def test_kind_not_allowed():
    assert one_problem(data(scope__deploy__kind="rolee")) == (
        "scope.deploy.kind: 'rolee' is not allowed; use one of: role, channel, token"
    )


def test_token_scope_is_validated_like_the_others():
    token = {
        "kind": "token",
        "max_duration": "8h",
        "approvers": ["sec-leads"],
        "requesters": ["engineers"],
    }
    policy = parse_policy(data(scope__api=token))
    api = next(s for s in policy.scopes if s.id == "api")
    assert api.issues_token and api.role is None and api.channel is None
    with pytest.raises(PolicyError) as err:
        parse_policy(
            data(scope__api=token | {"role": "deployers", "max_duration": "31d", "allow": ["view_channel"]})
        )
    assert set(err.value.problems) == {
        'scope.api.role: only used when kind = "role"; a token scope grants an access token, no role',
        "scope.api.max_duration: a token lives at most 30 days; give a max_duration of 30d or less",
        'scope.api.allow: only used when kind = "channel"; a token scope sets no permissions',
    }
    assert one_problem(data(scope__api=token | {"subjects": "bots"})).startswith(
        'scope.api.subjects: a token scope is for members only ("members")'
    )
    assert one_problem(data(guild__acme__token_dormant_after="soon")).startswith(
        "guild.acme.token_dormant_after:"
    )


def test_max_duration_missing():
    assert one_problem(data(scope__deploy__max_duration=None)) == (
        'scope.deploy.max_duration: missing; every scope needs a maximum duration (e.g. "8h")'
    )


def test_default_longer_than_max():
    assert one_problem(data(scope__deploy__default_duration="12h")) == (
        "scope.deploy.default_duration: '12h' is longer than max_duration '8h'"
    )


def test_bad_duration():
    assert one_problem(data(scope__deploy__max_duration="9x")) == (
        "scope.deploy.max_duration: '9x' is not a duration: use a number with s, m, h, d or w, "
        "for example 30m, 2h or 1d"
    )
    assert "must be longer than zero" in one_problem(data(guild__acme__pending_ttl="0m"))
    assert "write it as text" in one_problem(data(scope__deploy__max_duration=8))


def test_zero_allowed_for_cooldown_and_reminder():
    gp = parse_policy(data(guild__acme__request_cooldown="0s", guild__acme__expiry_reminder="0m")).guilds[0]
    assert gp.request_cooldown == dt.timedelta(0) == gp.expiry_reminder


def test_permission_typo():
    d = data(
        scope__deploy__kind="channel",
        scope__deploy__role=None,
        scope__deploy__channel="incident",
        scope__deploy__allow=["send_mesages"],
    )
    assert one_problem(d) == (
        "scope.deploy.allow: 'send_mesages' is not a Discord permission; did you mean 'send_messages'?"
    )


def test_permission_ceiling_typo():
    assert one_problem(data(scope__deploy__permission_ceiling=["atach_files"])) == (
        "scope.deploy.permission_ceiling: 'atach_files' is not a Discord permission; "
        "did you mean 'attach_files'?"
    )


def test_unknown_guild():
    assert one_problem(data(scope__deploy__guild="acne")) == (
        "scope.deploy.guild: 'acne' is not a configured guild; configured: acme"
    )


def test_guild_required_with_several_guilds():
    d = data(guild__beta={"approvals_channel": "a", "governance_channel": "g"})
    assert one_problem(d) == (
        "scope.deploy.guild: missing; more than one guild is configured, so say which one (acme, beta)"
    )


def test_unknown_key_suggests():
    d = data(scope__deploy__approver=["x"])
    assert one_problem(d) == "scope.deploy: unknown key 'approver'; did you mean 'approvers'?"
    assert one_problem(data(guild__acme__pending_tl="1h")) == (
        "guild.acme: unknown key 'pending_tl'; did you mean 'pending_ttl'?"
    )


def test_auto_approve_exceeds_max():
    d = data(
        scope__deploy__max_duration="1h",
        scope__deploy__auto_approve=[{"members_of": "on-call", "max_duration": "2h"}],
    )
    assert one_problem(d) == (
        "scope.deploy.auto_approve[0].max_duration: '2h' exceeds the scope's max_duration '1h'"
    )


def test_auto_approve_unknown_key():
    d = data(scope__deploy__auto_approve=[{"membersof": "on-call", "max_duration": "1h"}])
    found = problems(d)
    assert "scope.deploy.auto_approve[0]: unknown key 'membersof'; did you mean 'members_of'?" in found
    assert any(p.startswith("scope.deploy.auto_approve[0].members_of: missing") for p in found)


def test_toml_syntax_error_has_line_and_column(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[guild.acme]\napprovals_channel = "approvals\n')
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    assert "invalid TOML" in str(e.value)
    assert "line 2" in str(e.value) and "column" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "nope.toml")


def test_role_scope_needs_role():
    assert one_problem(data(scope__deploy__role=None)) == (
        "scope.deploy.role: missing; a role scope needs the role to grant (its name or id)"
    )


def test_channel_scope_needs_channel_and_permissions():
    found = problems(data(scope__deploy__kind="channel", scope__deploy__role=None))
    assert found == [
        "scope.deploy.channel: missing; a channel scope needs the channel (its name or id)",
        "scope.deploy.deny: a channel scope needs at least one permission in allow or deny",
    ]


def test_channel_scope_rejects_role_and_guild_wide_permissions():
    d = data(
        scope__deploy__kind="channel", scope__deploy__channel="c", scope__deploy__allow=["administrator"]
    )
    found = problems(d)
    assert any(p.startswith('scope.deploy.role: only used when kind = "role"') for p in found)
    assert (
        "scope.deploy.allow: 'administrator' is a server-wide permission and cannot be set on a channel"
    ) in found


def test_allow_and_deny_overlap():
    d = data(
        scope__deploy__kind="channel",
        scope__deploy__role=None,
        scope__deploy__channel="c",
        scope__deploy__allow=["view_channel"],
        scope__deploy__deny=["view_channel"],
    )
    assert one_problem(d) == "scope.deploy.deny: view_channel cannot be both allowed and denied"


def test_role_scope_rejects_allow():
    assert one_problem(data(scope__deploy__allow=["view_channel"])).startswith(
        'scope.deploy.allow: only used when kind = "channel"'
    )


def test_allow_above_ceiling():
    d = data(
        scope__deploy__kind="channel",
        scope__deploy__role=None,
        scope__deploy__channel="c",
        scope__deploy__allow=["view_channel", "manage_messages"],
        scope__deploy__permission_ceiling=["view_channel"],
    )
    assert one_problem(d) == (
        "scope.deploy.permission_ceiling: allow has manage_messages, "
        "which the permission_ceiling does not include"
    )


def test_approvers_and_requesters_required():
    found = problems(data(scope__deploy__approvers=None, scope__deploy__requesters=[]))
    assert found[0].startswith("scope.deploy.approvers: missing; who may approve")
    assert found[1].startswith("scope.deploy.requesters: must not be empty")


def test_everyone_cannot_approve():
    assert one_problem(data(scope__deploy__approvers=["@everyone"])) == (
        "scope.deploy.approvers[0]: '@everyone' cannot approve; name an approver role or users"
    )


def test_bad_user_approver():
    assert "is not a user id" in one_problem(data(scope__deploy__approvers=["user:bob"]))


def test_quorum_unreachable_with_users_only():
    d = data(scope__deploy__approvers=["user:1"], scope__deploy__approvals_required=2)
    assert one_problem(d).startswith("scope.deploy.approvals_required: 2 approvals can never be reached")


def test_approvals_required_at_least_one():
    assert one_problem(data(scope__deploy__approvals_required=0)) == (
        "scope.deploy.approvals_required: 0 is too small; the smallest allowed is 1"
    )


def test_wrong_types():
    assert one_problem(data(scope__deploy__self_approval="no")) == (
        "scope.deploy.self_approval: 'no' is not allowed; use true or false"
    )
    assert one_problem(data(scope__deploy__approvals_required="2")) == (
        "scope.deploy.approvals_required: '2' is not a whole number"
    )
    assert one_problem(data(scope__deploy__subjects="robots")) == (
        "scope.deploy.subjects: 'robots' is not allowed; use one of: members, bots, both"
    )


def test_bad_scope_id():
    d = data()
    d["scope"]["deploy now"] = d["scope"].pop("deploy")
    assert "is not a usable scope name" in one_problem(d)


def test_id_key_in_scope_table():
    assert one_problem(data(scope__deploy__id="x")).startswith("scope.deploy: unknown key 'id'")


def test_at_least_one_guild():
    assert one_problem({"scope": {}}) == "guild: missing; configure at least one [guild.<name or id>] table"
    assert one_problem({"guild": {}}) == "guild: missing; configure at least one [guild.<name or id>] table"


def test_guild_without_name():
    found = problems({"guild": {"approvals_channel": "a"}})
    assert found[0].startswith("guild.approvals_channel: 'a' is not a table")


def test_guild_channels_required():
    found = problems(data(guild__acme={"approvals_channel": ""}))
    assert found == [
        "guild.acme.approvals_channel: must not be empty; give a name or a numeric id",
        "guild.acme.governance_channel: missing; the channel (name or id) where decisions are narrated",
    ]


def test_duplicate_guild_names():
    d = data(guild__ACME={"approvals_channel": "a", "governance_channel": "g"})
    d["scope"]["deploy"]["guild"] = "acme"
    assert "the same guild as guild.acme" in one_problem(d)


def test_unknown_top_level_key():
    assert one_problem(data(scopes={})).startswith("unknown top-level key 'scopes'; did you mean 'scope'?")


@pytest.mark.parametrize("where", ["top", "warden", "guild", "scope"])
@pytest.mark.parametrize("key", ["token", "bot_token"])
def test_secrets_rejected(where, key):
    d = data()
    table = {
        "top": d,
        "warden": d.setdefault("warden", {}),
        "guild": d["guild"]["acme"],
        "scope": d["scope"]["deploy"],
    }
    table[where][key] = "MTAx.secret.value"
    found = one_problem(d)
    assert "secrets must not be in the policy" in found
    assert "WARDEN_TOKEN" in found and "WARDEN_TOKEN_FILE" in found
    assert "MTAx.secret.value" not in found


def test_rules_validated():
    rule = {"id": "r1", "when": {"event": "role_update"}, "outcome": "block", "controls": ["SOC2:CC6.3"]}
    d = data(rule=[rule, {**rule, "outcome": "blok"}, {**rule, "id": "r2", "when": {}}, {"id": "r3"}])
    found = problems(d)
    assert found == [
        "rule[1].id: 'r1' is already used by rule[0]; rule ids must be unique",
        "rule[1].outcome: 'blok' is not allowed; use one of: allow, alert, block, approve",
        'rule[2].when: needs an event, e.g. when = { event = "role_update", ... }',
        'rule[3].when: missing; every rule needs a condition, e.g. when = { event = "role_update" }',
        "rule[3].outcome: missing; use one of: allow, alert, block, approve",
    ]


def test_rule_tables_must_be_an_array():
    assert one_problem(data(rule={"x": {}})).startswith("rule: write rules as [[rule]] tables")


def test_runtime_errors():
    found = problems(data(warden={"log_level": "loud", "database_url": "warden.db", "tz": "x"}))
    assert (
        "warden.log_level: 'loud' is not allowed; use one of: DEBUG, INFO, WARNING, ERROR, CRITICAL" in found
    )
    assert any(p.startswith("warden.database_url: 'warden.db' is not a database URL") for p in found)
    assert "warden: unknown key 'tz'" in found


def test_many_problems_reported_together(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text(
        """
[guild.acme]
approvals_channel = "approvals"
governance_channel = "governance"
pending_ttl = "9x"

[scope.deploy]
kind = "rolee"
role = "deployers"
approver = ["sec-leads"]
requesters = ["engineers"]

[scope.room]
guild = "acne"
kind = "channel"
channel = "incident"
allow = ["send_mesages"]
max_duration = "1h"
default_duration = "2h"
approvers = ["sec-leads"]
requesters = ["@everyone"]

[[rule]]
id = "r"
when = { event = "role_update" }
outcome = "deny"
"""
    )
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    text = str(e.value)
    for expected in [
        "guild.acme.pending_ttl: '9x' is not a duration",
        "scope.deploy.kind: 'rolee' is not allowed; use one of: role, channel",
        "scope.deploy.max_duration: missing",
        "scope.deploy: unknown key 'approver'; did you mean 'approvers'?",
        "scope.deploy.approvers: missing",
        "scope.room.guild: 'acne' is not a configured guild; configured: acme",
        "scope.room.allow: 'send_mesages' is not a Discord permission; did you mean 'send_messages'?",
        "scope.room.default_duration: '2h' is longer than max_duration '1h'",
        "rule[0].outcome: 'deny' is not allowed",
    ]:
        assert expected in text, expected
    assert len(e.value.problems) == len(text.splitlines()) == 9
    assert e.value.source == str(f)


# ------------------------------------------------------------------ [attestation]


def test_attestation_is_optional_and_documented():
    assert parse_policy(BASE).attestation is None
    example = load_policy(EXAMPLE).attestation
    assert example is not None and example.on_missed == "remediate" and not example.include_standing_roles
    text = EXAMPLE.read_text()
    docs = (EXAMPLE.parent / "docs" / "configuration.md").read_text()
    for field in AttestationPolicy.model_fields:
        assert f"\n{field} =" in text, field
        assert f"`{field}`" in docs, field


def test_attestation_defaults_and_zero_values():
    p = parse_policy(data(attestation={})).attestation
    assert p == AttestationPolicy()
    assert (p.every, p.deadline, p.reminder, p.on_missed, p.include_standing_roles) == (
        dt.timedelta(days=30),
        dt.timedelta(days=7),
        dt.timedelta(days=2),
        "alert",
        False,
    )
    on_demand = parse_policy(data(attestation={"every": "0s", "reminder": "0s"})).attestation
    assert on_demand is not None and not on_demand.every and not on_demand.reminder
    assert not p.webhook_dormant_after  # off unless set: the rule deletes webhooks
    dormant = parse_policy(data(attestation={"webhook_dormant_after": "90d"})).attestation
    assert dormant is not None and dormant.webhook_dormant_after == dt.timedelta(days=90)


def test_attestation_problems_are_all_reported():
    found = problems(
        data(
            attestation={
                "every": "5d",
                "reminder": "9d",
                "on_missed": "delete",
                "grace": "0s",
                "include_standing_roles": "yes",
                "webhook_dormant_after": "soon",
                "evrey": "30d",
            }
        )
    )
    text = "\n".join(found)
    assert "attestation.every: 5d is not longer than the deadline (7d)" in text
    assert "attestation.reminder: 9d is not before the deadline (7d)" in text
    assert "attestation.on_missed: 'delete' is not allowed; use one of: alert, remediate" in text
    assert "attestation.grace:" in text
    assert "attestation.include_standing_roles:" in text
    assert "attestation.webhook_dormant_after:" in text
    assert "attestation: unknown key 'evrey'" in text
    assert problems(data(attestation="30d")) == ["attestation: expected an [attestation] table, got '30d'"]


def test_break_glass_on_a_bots_only_scope_is_refused() -> None:
    # Break-glass gives the scope to whoever uses it: a bots-only scope would hand a bot's role to a person.
    problem = one_problem(data(scope__deploy__subjects="bots", scope__deploy__breakglass=True))
    assert problem.startswith("scope.deploy.breakglass:"), problem
    assert "subjects are bots only" in problem and 'set subjects = "members"' in problem
    parse_policy(data(scope__deploy__subjects="both", scope__deploy__breakglass=True))


def test_check_config_flags_a_quorum_an_approver_who_asks_can_never_reach() -> None:
    policy = parse_policy(
        data(
            scope__deploy__approvers=["user:111111111111111111", "user:222222222222222222"],
            scope__deploy__approvals_required=2,
            scope__deploy__requesters=["user:111111111111111111", "engineers"],
        )
    )
    assert review_policy(policy) == [
        "scope.deploy.approvals_required: when <@111111111111111111> asks, 2 approval(s) can never be "
        "reached: their own vote does not count and only 1 other approver(s) are named; add an approver "
        "(or a role) or lower approvals_required"
    ]
    # An approver role, a quorum the others can reach, or self-approval: nothing to say.
    assert (
        review_policy(
            parse_policy(
                data(
                    scope__deploy__approvers=["user:111111111111111111", "sec-leads"],
                    scope__deploy__requesters=["user:111111111111111111"],
                )
            )
        )
        == []
    )
    assert (
        review_policy(
            parse_policy(
                data(
                    scope__deploy__approvers=["user:111111111111111111", "user:222222222222222222"],
                    scope__deploy__requesters=["user:111111111111111111"],
                )
            )
        )
        == []
    )
