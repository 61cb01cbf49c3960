"""[[rule]] and the admin keys are validated like the rest of the policy."""

from __future__ import annotations

import copy

import pytest

from bot.audit.defaults import DEFAULT_RULES, effective_rules
from bot.policy import PolicyError, Rule, parse_policy

BASE = {"guild": {"acme": {"approvals_channel": "approvals", "governance_channel": "governance"}}}


def problems(**top):
    d = copy.deepcopy(BASE) | top
    with pytest.raises(PolicyError) as e:
        parse_policy(d)
    return e.value.problems


def rule(**when):
    return {"id": "r", "when": when, "outcome": "block"}


def test_typed_condition():
    p = parse_policy(
        BASE
        | {
            "rule": [
                rule(event=["role_update", "role_create"], gains_any=["Administrator"], actor_is_admin=False)
            ]
        }
    )
    when = p.rules[0].when
    assert when.event == {"role_update", "role_create"}
    assert when.gains_any == {"administrator"}
    assert when.conditions() == {"actor_is_admin": False, "gains_any": frozenset({"administrator"})}


def test_unknown_event_names_the_key_and_suggests():
    assert problems(rule=[rule(event="role_updat")]) == [
        "rule[0].when.event: 'role_updat' is not a Warden event; did you mean 'role_update'?"
    ]


def test_unknown_condition_key_suggests():
    assert problems(rule=[rule(event="role_update", gain_any=["administrator"])]) == [
        "rule[0].when: unknown key 'gain_any'; did you mean 'gains_any'?"
    ]


def test_unknown_permission_suggests():
    assert problems(rule=[rule(event="role_update", gains_any=["administrater"])]) == [
        "rule[0].when.gains_any: 'administrater' is not a Discord permission; did you mean 'administrator'?"
    ]


def test_condition_that_never_holds_for_the_event_is_an_error():
    found = problems(rule=[rule(event="webhook_create", mfa_lowered=True)])
    assert found == ["rule[0].when.mfa_lowered: never holds for webhook_create; it applies to: guild_update"]


def test_booleans_are_strict():
    assert problems(rule=[rule(event="webhook_create", channel_is_private="yes")]) == [
        "rule[0].when.channel_is_private: 'yes' is not allowed; use true or false"
    ]


def test_admins_and_broad_roles():
    gp = parse_policy(
        {
            "guild": {
                "acme": BASE["guild"]["acme"] | {"admins": ["sec", "user:5", 7], "broad_roles": ["members"]}
            }
        }
    ).guilds[0]
    assert [str(a) for a in gp.admins] == ["role:sec", "user:5", "7"]
    assert gp.broad_roles == ("members",)
    found = problems(guild={"acme": BASE["guild"]["acme"] | {"admins": ["@everyone"]}})
    assert found == [
        "guild.acme.admins[0]: '@everyone' cannot be an admin; name admin roles or \"user:<id>\""
    ]


def test_defaults_are_valid_and_policy_rules_come_first_and_replace_by_id():
    ids = [r.id for r in DEFAULT_RULES]
    assert len(ids) == len(set(ids))
    mine = Rule.model_validate(
        {
            "id": "jit-role-by-hand",
            "when": {"event": "member_role_update", "role_is_jit": True},
            "outcome": "approve",
        }
    )
    extra = Rule.model_validate({"id": "mine", "when": {"event": "bot_add"}, "outcome": "allow"})
    rules = effective_rules([extra, mine])
    assert [r.id for r in rules[:2]] == ["mine", "jit-role-by-hand"]
    assert [r.id for r in rules].count("jit-role-by-hand") == 1
    assert len(rules) == len(DEFAULT_RULES) + 1


def test_every_default_rule_is_documented_with_an_example():
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "rules.md").read_text()
    for r in DEFAULT_RULES:
        assert f"`{r.id}`" in docs, r.id
