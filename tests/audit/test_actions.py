"""The revert planner: pure, exact, and never touches sanctioned access."""

from __future__ import annotations

from bot.audit.actions import (
    AddMemberRole,
    DeleteOverwrite,
    DeleteWebhook,
    EditRolePermissions,
    PlanInput,
    Quarantine,
    RemoveMemberRole,
    SetGuildSetting,
    SetOverwrite,
    action_from_json,
    action_to_json,
    plan_revert,
)
from bot.audit.events import event_from_payload
from bot.policy import permissions_from_names
from tests.helpers import (
    ALICE,
    BOT,
    BOT_MANAGED_ROLE,
    GUILD,
    JIT_ROLE,
    PLAIN_ROLE,
    PUBLIC_CHANNEL,
    bits,
    overwrite,
    payload,
    role_added,
    role_perms,
    webhook,
)


def test_member_role_revert_removes_only_the_roles_in_question():
    raw = role_added(ALICE, JIT_ROLE)
    raw["changes"][0]["new_value"].append({"id": str(PLAIN_ROLE), "name": "p"})
    plan = plan_revert(event_from_payload(raw), PlanInput(roles=frozenset({JIT_ROLE})))
    assert plan.actions == (RemoveMemberRole(GUILD, ALICE, JIT_ROLE),)
    assert plan.reapply == (AddMemberRole(GUILD, ALICE, JIT_ROLE),)


def test_a_sanctioned_role_is_never_removed_even_if_asked():
    plan = plan_revert(
        event_from_payload(role_added(ALICE, JIT_ROLE)),
        PlanInput(roles=frozenset({JIT_ROLE}), sanctioned_roles=frozenset({JIT_ROLE})),
    )
    assert plan.actions == () and plan.not_revertible


def test_role_permission_revert_touches_only_the_changed_bits():
    event = event_from_payload(role_perms(PLAIN_ROLE, bits("kick_members"), bits("administrator")))
    (edit,) = plan_revert(event, PlanInput()).actions
    assert isinstance(edit, EditRolePermissions)
    admin, kick, send = (
        permissions_from_names([n]).value for n in ("administrator", "kick_members", "send_messages")
    )
    # A permission added later by someone else (send_messages) survives the revert.
    assert edit.apply_to(admin | send) == kick | send


def test_overwrite_reverts():
    created = event_from_payload(overwrite(PUBLIC_CHANNEL, GUILD, "0", bits("send_messages")))
    plan = plan_revert(created, PlanInput())
    assert plan.actions == (DeleteOverwrite(GUILD, PUBLIC_CHANNEL, GUILD),)
    assert isinstance(plan.reapply[0], SetOverwrite)
    updated = event_from_payload(overwrite(PUBLIC_CHANNEL, GUILD, "0", bits("send_messages"), before="0"))
    (restore,) = plan_revert(updated, PlanInput()).actions
    assert restore == SetOverwrite(GUILD, PUBLIC_CHANNEL, GUILD, "role", 0, 0)
    sanctioned = plan_revert(
        event_from_payload(overwrite(PUBLIC_CHANNEL, ALICE, "1", bits("send_messages"))),
        PlanInput(sanctioned_overwrite=True),
    )
    assert sanctioned.actions == ()


def test_webhook_is_deleted():
    plan = plan_revert(event_from_payload(webhook(PUBLIC_CHANNEL, 55)), PlanInput())
    assert plan.actions == (DeleteWebhook(GUILD, 55, PUBLIC_CHANNEL),)


def test_bot_quarantine_removes_roles_and_strips_its_managed_role():
    q = Quarantine(
        role_ids=(PLAIN_ROLE, BOT_MANAGED_ROLE), managed_role_id=BOT_MANAGED_ROLE, managed_role_permissions=8
    )
    plan = plan_revert(event_from_payload(payload(28, target=BOT)), PlanInput(quarantine=q))
    assert plan.actions == (
        RemoveMemberRole(GUILD, BOT, PLAIN_ROLE),
        EditRolePermissions(GUILD, BOT_MANAGED_ROLE, remove_bits=8),
    )
    assert plan.reapply == (
        AddMemberRole(GUILD, BOT, PLAIN_ROLE),
        EditRolePermissions(GUILD, BOT_MANAGED_ROLE, add_bits=8),
    )


def test_guild_setting_restored_and_unrevertible_events_say_why():
    raw = payload(1, target=GUILD, changes=[{"key": "verification_level", "old_value": 3, "new_value": 0}])
    plan = plan_revert(event_from_payload(raw), PlanInput())
    assert plan.actions == (SetGuildSetting(GUILD, "verification_level", 3),)
    assert plan.reapply == (SetGuildSetting(GUILD, "verification_level", 0),)
    deleted = plan_revert(event_from_payload(payload(32, target=PLAIN_ROLE)), PlanInput())
    assert deleted.actions == () and "role delete" in (deleted.not_revertible or "")


def test_actions_round_trip_as_json():
    for action in (
        RemoveMemberRole(1, 2, 3),
        EditRolePermissions(1, 2, remove_bits=8),
        SetOverwrite(1, 2, 3, "member", 4, 5),
        DeleteWebhook(1, 2),
    ):
        assert action_from_json(action_to_json(action)) == action
        assert action.describe()
