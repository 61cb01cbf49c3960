"""Raw audit-log entries → AuditEvent: every watched kind, and nothing ever raises."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.audit.events import event_from_payload, snowflake, snowflake_time
from bot.audit.names import ACTION_TYPES, EVENT_NAMES
from tests.helpers import (
    ALICE,
    BOT,
    GUILD,
    JIT_ROLE,
    PRIVATE_CHANNEL,
    bits,
    overwrite,
    payload,
    role_added,
    role_perms,
    webhook,
)


def test_every_action_type_maps_to_a_known_event_name():
    assert set(ACTION_TYPES.values()) <= set(EVENT_NAMES)
    assert "bot_remove" in EVENT_NAMES and "unclassified" in EVENT_NAMES


def test_role_update_names_permissions_gained_and_lost():
    e = event_from_payload(
        role_perms(
            JIT_ROLE,
            bits("send_messages", "kick_members"),
            bits("send_messages", "administrator"),
            reason="why",
        )
    )
    assert e.action == "role_update" and e.target_type == "role" and e.target_id == JIT_ROLE
    assert e.guild_id == GUILD and e.actor_id == ALICE and e.reason == "why"
    assert e.permissions_gained == {"administrator"} and e.permissions_lost == {"kick_members"}
    assert e.created_at is not None and e.created_at.tzinfo is dt.UTC


def test_member_role_update_lists_roles_added_and_removed():
    p = role_added(ALICE, JIT_ROLE)
    p["changes"].append({"key": "$remove", "new_value": [{"id": "77", "name": "x"}]})
    e = event_from_payload(p)
    assert e.action == "member_role_update" and e.target_type == "member"
    assert e.roles_added == (JIT_ROLE,) and e.roles_removed == (77,)


def test_overwrite_names_channel_target_and_allow_bits():
    e = event_from_payload(overwrite(PRIVATE_CHANNEL, GUILD, "0", bits("send_messages"), before="0"))
    assert e.action == "overwrite_update" and e.channel_id == PRIVATE_CHANNEL
    assert e.overwrite_target_type == "role" and e.overwrite_target_id == GUILD
    assert e.permissions_gained == {"send_messages"}
    member = event_from_payload(overwrite(PRIVATE_CHANNEL, ALICE, "1", bits("view_channel")))
    assert member.action == "overwrite_create" and member.overwrite_target_type == "member"


def test_webhook_channel_comes_from_its_changes():
    e = event_from_payload(webhook(PRIVATE_CHANNEL))
    assert e.action == "webhook_create" and e.channel_id == PRIVATE_CHANNEL and e.target_type == "webhook"


def test_rest_entries_take_the_guild_from_the_caller():
    p = role_added(ALICE, JIT_ROLE, guild=None)
    assert event_from_payload(p).action == "unclassified"
    assert event_from_payload(p, guild_id=GUILD).guild_id == GUILD


def test_a_kicked_bot_is_bot_remove_and_a_kicked_member_is_ignored():
    kick = payload(20, target=BOT)
    assert event_from_payload(kick, is_bot=lambda uid: uid == BOT).action == "bot_remove"
    assert event_from_payload(payload(20, target=ALICE), is_bot=lambda uid: False).action == "ignored"


def test_guild_update_keeps_mfa_change():
    e = event_from_payload(
        payload(1, target=GUILD, changes=[{"key": "mfa_level", "old_value": 1, "new_value": 0}])
    )
    assert e.action == "guild_update" and e.change("mfa_level").before == 1


def test_unknown_and_broken_entries_are_unclassified_with_a_reason():
    assert event_from_payload(payload(9999, target=1)).problem == "unknown action type 9999"
    assert event_from_payload({"action_type": 31}).problem == "the entry has no id"
    assert event_from_payload(payload(31, target=5, changes="x")).action == "unclassified"  # type: ignore[arg-type]
    odd = role_perms(JIT_ROLE, "abc", "8")
    assert event_from_payload(odd).action == "unclassified"
    assert event_from_payload("not a dict").action == "unclassified"
    assert event_from_payload(payload(72, target=1)).action == "ignored"  # message delete


def test_proof_uses_narrative_conventions():
    proof = event_from_payload(role_added(ALICE, JIT_ROLE)).proof()
    assert proof["member_id"] == ALICE and proof["added_role_ids"] == [JIT_ROLE]
    assert proof["event"] == "member_role_update" and proof["audit_log_entry"].isdigit()


def test_snowflakes():
    assert (
        snowflake("123") == 123
        and snowflake(True) is None
        and snowflake("-1") is None
        and snowflake("1" * 30) is None
    )
    assert snowflake_time(0) == dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["id", "action_type", "user_id", "target_id", "changes", "options", "reason", "guild_id"]
)
field_values = st.one_of(
    json,
    st.integers(min_value=0, max_value=200),
    st.from_regex(r"\A[0-9]{1,20}\Z"),
    st.lists(
        st.fixed_dictionaries(
            {
                "key": st.sampled_from(
                    ["permissions", "allow", "deny", "$add", "$remove", "mfa_level", "channel_id"]
                )
            },
            optional={"old_value": json, "new_value": json},
        ),
        max_size=3,
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, field_values) | json)
def test_arbitrary_payloads_never_raise(data):
    event = event_from_payload(data, guild_id=GUILD, is_bot=lambda uid: uid % 2 == 0)
    assert event.action in (*EVENT_NAMES, "ignored")
    event.proof()
