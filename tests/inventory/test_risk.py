"""The risk score: deterministic, documented weights, always with its reasons."""

from __future__ import annotations

import datetime as dt

import discord

from bot.inventory import risk
from bot.inventory.risk import RiskFacts, score

P = discord.Permissions
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
D = dt.timedelta(days=1)


def test_quiet_owned_bot_scores_zero() -> None:
    facts = RiskFacts(
        permissions=P(send_messages=True).value,
        baseline_permissions=P(send_messages=True).value,
        owner_id=5,
        last_activity_at=NOW - D,
    )
    result = score(facts, now=NOW)
    assert result.score == 0 and result.reasons == ()


def test_every_factor_with_its_reason() -> None:
    baseline = P(send_messages=True, view_channel=True).value
    current = baseline | P(manage_roles=True, attach_files=True).value
    channels = {1: P(view_channel=True).value, 2: P(view_channel=True).value, 3: 0, 4: 0}
    facts = RiskFacts(
        permissions=current,
        baseline_permissions=baseline,
        channel_permissions=channels,
        channel_count=4,
        owner_id=None,
        last_activity_at=NOW - 40 * D,
    )
    result = score(facts, now=NOW)
    assert result.explain() == [
        "+20 gained since its baseline: attach_files, manage_roles",  # 8 + 12 (privileged)
        "+20 has no owner",
        "+15 no activity seen for 40 days",
        "+15 privileged permissions: manage_roles",
        "+5 reaches 2 of 4 channels (50%)",
    ]
    assert result.score == 75
    assert score(facts, now=NOW) == result  # deterministic


def test_administrator_counts_once_and_the_score_is_capped() -> None:
    facts = RiskFacts(
        permissions=P.all().value,
        baseline_permissions=0,
        channel_permissions={1: P.all().value},
        channel_count=1,
        owner_id=None,
        first_seen_at=NOW - 90 * D,
    )
    result = score(facts, now=NOW)
    texts = [r.text for r in result.reasons]
    assert texts[0] == "has Administrator (every permission, bypasses overwrites)"
    assert not any(t.startswith("privileged permissions") for t in texts)
    assert "no activity seen since first seen, 90 days" in texts
    assert any(r.points == risk.EXPANSION_CAP and r.text.startswith("gained since") for r in result.reasons)
    assert result.score == risk.CAP  # 40 + 30 + 20 + 15 + 10 = 115, capped


def test_privileged_points_are_capped_and_unconfirmed_owner_counts() -> None:
    every_privileged = P(**dict.fromkeys(risk.PRIVILEGED_POINTS, True)).value
    facts = RiskFacts(
        permissions=every_privileged, baseline_permissions=every_privileged, owner_id=3, owner_confirmed=False
    )
    result = score(facts, now=NOW)
    assert [r.points for r in result.reasons] == [risk.PRIVILEGED_CAP, risk.UNCONFIRMED_OWNER_POINTS]


def test_integration_scope_expansion_and_no_baseline_means_no_drift() -> None:
    facts = RiskFacts(
        permissions=P(manage_webhooks=True).value,
        baseline_permissions=None,
        scopes=("bot", "applications.commands", "webhook.incoming"),
        baseline_scopes=("bot", "applications.commands"),
        owner_id=9,
    )
    assert score(facts, now=NOW).explain() == [
        "+10 privileged permissions: manage_webhooks",
        "+8 OAuth2 scopes added since its baseline: webhook.incoming",
    ]


def test_dormancy_threshold_is_configurable() -> None:
    facts = RiskFacts(permissions=0, baseline_permissions=0, owner_id=1, last_activity_at=NOW - 8 * D)
    assert score(facts, now=NOW).score == 0
    assert score(facts, now=NOW, dormant_after=7 * D).explain() == ["+15 no activity seen for 8 days"]
