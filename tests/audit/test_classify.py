"""The default rules catch what PRODUCT.md and docs/rules.md promise, and never a sanctioned change."""

from __future__ import annotations

import pytest

from bot.audit.classify import Classifier
from bot.audit.decision import AuditOutcome
from bot.audit.defaults import DEFAULT_RULES, effective_rules
from bot.audit.events import event_from_payload
from bot.policy import parse_policy
from tests.helpers import (
    ADMIN,
    ALICE,
    BOB,
    BOT,
    BROAD_ROLE,
    GUILD,
    JIT_ROLE,
    PLAIN_ROLE,
    POLICY_DATA,
    PRIVATE_CHANNEL,
    PUBLIC_CHANNEL,
    WARDEN,
    FakeFacts,
    FakeGrants,
    audit_policy,
    bits,
    overwrite,
    payload,
    role_added,
    role_perms,
    webhook,
)


def classifier(grants: FakeGrants | None = None, rules=None, **policy_extra):
    p = audit_policy(**policy_extra)
    return Classifier(
        p,
        effective_rules(p.rules) if rules is None else rules,
        FakeFacts(),
        grants or FakeGrants(),
        warden_user_id=WARDEN,
    )


async def verdict(raw, **kw):
    return await classifier(**kw).classify(event_from_payload(raw))


async def test_jit_role_given_by_hand_is_blocked():
    v = await verdict(role_added(ALICE, JIT_ROLE, actor=ADMIN))
    assert (v.rule_id, v.outcome) == ("jit-role-by-hand", AuditOutcome.BLOCK)
    assert v.facts.unsanctioned_jit_roles == {JIT_ROLE}
    assert v.facts.proof()["scopes"] == ["deploy"]


async def test_jit_role_with_an_active_grant_is_sanctioned_never_reverted():
    grants = FakeGrants({(ALICE, "role", JIT_ROLE): 12})
    v = await verdict(role_added(ALICE, JIT_ROLE, actor=BOB), grants=grants)
    assert (v.rule_id, v.outcome) == ("sanctioned-grant", AuditOutcome.ALLOW)
    assert v.facts.proof()["sanctioned_by_grants"] == [12]


async def test_mixed_change_reverts_only_the_unsanctioned_jit_role():
    raw = role_added(ALICE, JIT_ROLE, actor=ADMIN)
    raw["changes"][0]["new_value"].append({"id": str(PLAIN_ROLE), "name": "plain"})
    c = classifier()
    event = event_from_payload(raw)
    v = await c.classify(event)
    assert v.rule_id == "jit-role-by-hand"
    assert v.plan_input(event, v.rule).roles == {JIT_ROLE}


async def test_warden_own_change_is_not_drift():
    v = await verdict(
        role_added(ALICE, JIT_ROLE, actor=WARDEN, reason="Warden grant #3 (request #4, scope deploy) applied")
    )
    assert v.own_action


async def test_a_reason_that_claims_warden_proves_nothing():
    v = await verdict(
        role_added(ALICE, JIT_ROLE, actor=BOB, reason="Warden grant #3 (request #4, scope deploy) applied")
    )
    assert v.rule_id == "jit-role-by-hand"
    assert "reason_claims_warden" in v.facts.proof()


@pytest.mark.parametrize(
    "perm",
    [
        "administrator",
        "manage_guild",
        "manage_roles",
        "manage_channels",
        "manage_webhooks",
        "ban_members",
        "kick_members",
    ],
)
async def test_role_gaining_dangerous_permission(perm):
    by_alice = await verdict(role_perms(PLAIN_ROLE, "0", bits(perm), actor=ALICE))
    assert (by_alice.rule_id, by_alice.outcome) == ("dangerous-permission-by-non-admin", AuditOutcome.BLOCK)
    by_admin = await verdict(role_perms(PLAIN_ROLE, "0", bits(perm), actor=ADMIN))
    assert (by_admin.rule_id, by_admin.outcome) == ("dangerous-permission-added", AuditOutcome.ALERT)


async def test_admin_by_role_counts_as_admin():
    v = await verdict(role_perms(PLAIN_ROLE, "0", bits("manage_roles"), actor=BOB))  # BOB holds sec-admins
    assert v.rule_id == "dangerous-permission-added" and v.facts.actor_is_admin


async def test_the_server_owner_is_always_an_admin():
    facts = FakeFacts()
    facts.owner_id = lambda guild_id: ALICE  # type: ignore[method-assign]
    p = audit_policy()
    c = Classifier(p, effective_rules(p.rules), facts, FakeGrants(), warden_user_id=WARDEN)
    v = await c.classify(event_from_payload(role_perms(PLAIN_ROLE, "0", bits("manage_roles"), actor=ALICE)))
    assert v.rule_id == "dangerous-permission-added" and v.facts.actor_is_admin


async def test_without_an_admin_list_nobody_is_judged_a_non_admin():
    data = {
        **POLICY_DATA,
        "guild": {str(GUILD): {k: v for k, v in POLICY_DATA["guild"][str(GUILD)].items() if k != "admins"}},
    }
    p = parse_policy(data)
    c = Classifier(p, effective_rules(p.rules), FakeFacts(), FakeGrants(), warden_user_id=WARDEN)
    v = await c.classify(event_from_payload(role_perms(PLAIN_ROLE, "0", bits("manage_roles"), actor=ALICE)))
    assert v.facts.actor_is_admin is None
    assert (v.rule_id, v.outcome) == ("dangerous-permission-added", AuditOutcome.ALERT)


async def test_jit_role_above_its_scope_ceiling():
    v = await verdict(
        role_perms(JIT_ROLE, bits("send_messages"), bits("send_messages", "mention_everyone"), actor=ADMIN)
    )
    assert (v.rule_id, v.outcome) == ("role-above-ceiling", AuditOutcome.BLOCK)
    inside = await verdict(
        role_perms(JIT_ROLE, bits("send_messages"), bits("send_messages", "attach_files"), actor=ADMIN)
    )
    assert inside.rule_id == "no-rule-matched" and inside.outcome == AuditOutcome.ALLOW


async def test_bot_added_alerts_and_dangerous_bot_is_quarantined_pending_approval():
    c = classifier()
    c.facts.bot_perms[BOT] = int(bits("send_messages"))  # type: ignore[attr-defined]
    harmless = await c.classify(event_from_payload(payload(28, actor=ADMIN, target=BOT)))
    assert (harmless.rule_id, harmless.outcome) == ("bot-added", AuditOutcome.ALERT)
    v = await verdict(payload(28, actor=ADMIN, target=BOT))
    assert (v.rule_id, v.outcome) == ("dangerous-bot-quarantined", AuditOutcome.APPROVE)
    assert v.facts.quarantine is not None and v.facts.quarantine.managed_role_permissions


async def test_webhooks():
    private = await verdict(webhook(PRIVATE_CHANNEL, actor=ADMIN))
    assert (private.rule_id, private.outcome) == ("webhook-in-private-channel", AuditOutcome.BLOCK)
    by_non_admin = await verdict(webhook(PUBLIC_CHANNEL, actor=ALICE))
    assert (by_non_admin.rule_id, by_non_admin.outcome) == ("webhook-by-non-admin", AuditOutcome.ALERT)
    by_admin = await verdict(webhook(PUBLIC_CHANNEL, actor=ADMIN))
    assert by_admin.rule_id == "no-rule-matched"
    unknown_channel = await verdict(webhook(999, actor=ADMIN))
    assert unknown_channel.rule_id == "no-rule-matched"  # a fact not established never matches


@pytest.mark.parametrize("target", [GUILD, BROAD_ROLE])
async def test_overwrite_opening_a_channel_to_everyone_or_a_broad_role(target):
    v = await verdict(overwrite(PUBLIC_CHANNEL, target, "0", bits("send_messages"), actor=ADMIN))
    assert (v.rule_id, v.outcome) == ("overwrite-opens-channel", AuditOutcome.BLOCK)
    read_only = await verdict(overwrite(PUBLIC_CHANNEL, target, "0", bits("view_channel"), actor=ADMIN))
    assert read_only.rule_id == "no-rule-matched"


async def test_member_overwrite_that_is_an_active_channel_grant_is_sanctioned():
    grants = FakeGrants({(ALICE, "channel", PRIVATE_CHANNEL): 5})
    v = await verdict(overwrite(PRIVATE_CHANNEL, ALICE, "1", bits("send_messages"), actor=BOB), grants=grants)
    assert v.rule_id == "sanctioned-grant"


async def test_permission_change_by_non_admin():
    v = await verdict(role_perms(PLAIN_ROLE, "0", bits("attach_files"), actor=ALICE))
    assert (v.rule_id, v.outcome) == ("permission-change-by-non-admin", AuditOutcome.ALERT)
    plain = await verdict(role_added(BOB, PLAIN_ROLE, actor=ALICE))
    assert plain.rule_id == "permission-change-by-non-admin"
    assert (await verdict(role_added(BOB, PLAIN_ROLE, actor=ADMIN))).rule_id == "no-rule-matched"


async def test_mfa_lowered():
    raw = payload(
        1, actor=ADMIN, target=GUILD, changes=[{"key": "mfa_level", "old_value": 1, "new_value": 0}]
    )
    v = await verdict(raw)
    assert (v.rule_id, v.outcome) == ("mfa-lowered", AuditOutcome.ALERT)
    raised = payload(
        1, actor=ADMIN, target=GUILD, changes=[{"key": "mfa_level", "old_value": 0, "new_value": 1}]
    )
    assert (await verdict(raised)).rule_id == "no-rule-matched"


async def test_unclassified_is_an_alert_not_an_exception():
    v = await verdict(payload(9999, target=5))
    assert (v.rule_id, v.outcome) == ("unclassified", AuditOutcome.ALERT)
    rules = [{"id": "quiet-unknowns", "when": {"event": "unclassified"}, "outcome": "allow"}]
    silenced = await verdict(payload(9999, target=5), rule=rules)
    assert (silenced.rule_id, silenced.outcome) == ("quiet-unknowns", AuditOutcome.ALLOW)


async def test_first_matching_rule_wins_and_policy_rules_come_first():
    rules = [
        {"id": "ops-may-add-bots", "when": {"event": "bot_add", "target": [BOT]}, "outcome": "allow"},
        {"id": "later", "when": {"event": "bot_add"}, "outcome": "block"},
    ]
    v = await verdict(payload(28, actor=ADMIN, target=BOT), rule=rules)
    assert v.rule_id == "ops-may-add-bots" and v.outcome == AuditOutcome.ALLOW


async def test_policy_can_choose_to_adopt_a_hand_given_jit_role_as_a_request():
    rules = [
        {
            "id": "jit-role-by-hand",
            "when": {"event": "member_role_update", "role_is_jit": True},
            "outcome": "approve",
        }
    ]
    v = await verdict(role_added(ALICE, JIT_ROLE, actor=ADMIN), rule=rules)
    assert (v.rule_id, v.outcome) == ("jit-role-by-hand", AuditOutcome.APPROVE)


async def test_target_by_name():
    rules = [
        {
            "id": "deployers-watch",
            "when": {"event": "role_update", "target": ["deployers"]},
            "outcome": "alert",
        }
    ]
    v = await verdict(role_perms(JIT_ROLE, "0", "0", actor=ADMIN), rule=rules)
    assert v.rule_id == "deployers-watch"


def test_defaults_cover_the_promised_cases():
    ids = {r.id for r in DEFAULT_RULES}
    assert {
        "jit-role-by-hand",
        "role-above-ceiling",
        "dangerous-permission-by-non-admin",
        "dangerous-bot-quarantined",
        "bot-added",
        "webhook-in-private-channel",
        "webhook-by-non-admin",
        "overwrite-opens-channel",
        "permission-change-by-non-admin",
        "mfa-lowered",
    } <= ids


async def test_a_bot_given_a_dangerous_role():
    rules = [
        {
            "id": "bot-scope-grew",
            "when": {"event": "member_role_update", "target_is_bot": True, "bot_dangerous": True},
            "outcome": "block",
        }
    ]
    c = classifier(rule=rules)
    c.facts.role_perms[PLAIN_ROLE] = int(bits("ban_members"))
    v = await c.classify(event_from_payload(role_added(BOT, PLAIN_ROLE, actor=ADMIN)))
    assert (v.rule_id, v.outcome) == ("bot-scope-grew", AuditOutcome.BLOCK)
    c.facts.role_perms[PLAIN_ROLE] = 0
    assert (
        await c.classify(event_from_payload(role_added(BOT, PLAIN_ROLE, actor=ADMIN)))
    ).rule_id != "bot-scope-grew"
