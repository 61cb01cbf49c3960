"""DecisionService and the control map."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.controls import ControlMap, ControlMapError
from bot.db.models import LedgerEntry, NarrativeOutbox
from bot.decisions.service import Decision, DecisionService, Outcome
from bot.ledger import Signer, verify_chain


@pytest.fixture
def controls() -> ControlMap:
    return ControlMap.load_default()


@pytest.fixture
def service(clock, controls) -> DecisionService:
    return DecisionService(Signer.generate(), controls, clock)


def grant_decision(**overrides) -> Decision:
    values = dict(
        outcome=Outcome.APPLIED,
        rule="scope:deploy",
        reason="Two approvers approved within the pending time.",
        guild_id=900,
        proof={"subject_id": 5, "role_id": 7, "duration_seconds": 3600},
        actor_id=42,
        request_id=3,
        grant_id=4,
    )
    values.update(overrides)
    return Decision(**values)


async def test_record_writes_entry_and_outbox_in_caller_transaction(session_factory, service, clock):
    async with session_factory() as session, session.begin():
        entry = await service.record(session, grant_decision())
        assert entry.id is not None
    async with session_factory() as session:
        stored = (await session.scalars(select(LedgerEntry))).one()
        outbox = (await session.scalars(select(NarrativeOutbox))).one()
        assert stored.outcome == "granted"
        assert stored.created_at == clock.now()
        assert (stored.guild_id, stored.actor_id, stored.request_id, stored.grant_id) == (900, 42, 3, 4)
        assert stored.proof == {"subject_id": 5, "role_id": 7, "duration_seconds": 3600}
        assert (outbox.entry_id, outbox.guild_id, outbox.created_at) == (stored.id, 900, clock.now())
        assert outbox.posted_at is None and outbox.attempts == 0
        assert (await verify_chain(session, service.signer.public_key)).ok


async def test_rollback_leaves_neither(session_factory, service):
    async with session_factory() as session:
        await session.begin()
        await service.record(session, grant_decision())
        await session.rollback()
    async with session_factory() as session:
        assert (await session.scalars(select(LedgerEntry))).all() == []
        assert (await session.scalars(select(NarrativeOutbox))).all() == []
        assert (await verify_chain(session, service.signer.public_key)).ok


async def test_guildless_decision_is_ledger_only(session_factory, service):
    async with session_factory() as session, session.begin():
        await service.record(session, grant_decision(guild_id=None, outcome=Outcome.ALERT))
    async with session_factory() as session:
        assert len((await session.scalars(select(LedgerEntry))).all()) == 1
        assert (await session.scalars(select(NarrativeOutbox))).all() == []


async def test_controls_from_map_by_outcome(session_factory, service, controls):
    async with session_factory() as session, session.begin():
        granted = await service.record(session, grant_decision())
        denied = await service.record(session, grant_decision(outcome=Outcome.DENIED))
        explicit = await service.record(
            session, grant_decision(outcome=Outcome.BLOCK, controls=("SOC2:CC6.3", "ISO27001:A.8.2"))
        )
        bot = await service.record(
            session, grant_decision(outcome=Outcome.APPROVED, proof={"subject_id": 5, "subject_is_bot": True})
        )
    assert tuple(granted.controls) == controls.for_outcome("granted")
    assert "SOC2:CC6.2" in granted.controls and "ISO27001:A.8.15" in granted.controls
    assert tuple(denied.controls) == controls.for_outcome("denied")
    assert explicit.controls == ["SOC2:CC6.3", "ISO27001:A.8.2"]
    assert {"EUAIA:Art.12", "EUAIA:Art.14", "ISO42001:A.6.2.8"} <= set(bot.controls)
    assert "EUAIA:Art.14" not in granted.controls


def test_every_outcome_is_mapped(controls):
    for outcome in Outcome:
        assert controls.for_outcome(outcome) != (), outcome
        assert set(controls.outcomes) <= {o.value for o in Outcome}


def test_default_map_uses_only_verified_identifiers(controls):
    assert set(controls.controls) == {
        "SOC2:CC6.1",
        "SOC2:CC6.2",
        "SOC2:CC6.3",
        "SOC2:CC7.2",
        "SOC2:CC8.1",
        "ISO27001:A.5.15",
        "ISO27001:A.5.16",
        "ISO27001:A.5.18",
        "ISO27001:A.8.2",
        "ISO27001:A.8.15",
        "ISO27001:A.8.16",
        "GDPR:Art.32",
        "EUAIA:Art.12",
        "EUAIA:Art.14",
        "ISO42001:A.6.2.8",
    }
    assert controls.title("SOC2:CC6.2") == "authorising and removing users"
    assert controls.describe("ISO27001:A.5.18") == "ISO27001:A.5.18 — access rights"
    assert controls.describe("NIST:AC-2") == "NIST:AC-2"


MINIMAL = """
always = ["A:1"]
[controls."A:1"]
title = "one"
[controls."A:2"]
title = "two"
[controls."B:3"]
title = "three"
[outcomes]
granted = ["A:2"]
[rules]
"admin-permission-added" = ["B:3"]
"attest:*" = ["A:2", "B:3"]
"""


def test_rules_add_controls(tmp_path):
    path = tmp_path / "controls.toml"
    path.write_text(MINIMAL)
    cmap = ControlMap.load(path)
    assert cmap.for_outcome("granted") == ("A:1", "A:2")
    assert cmap.for_outcome("granted", "admin-permission-added") == ("A:1", "A:2", "B:3")
    assert cmap.for_outcome("blocked", "attest:webhook") == ("A:1", "A:2", "B:3")
    assert cmap.for_outcome("blocked", "other") == ("A:1",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL.replace('granted = ["A:2"]', 'granted = ["A:9"]'),
            "outcomes.granted names undeclared control",
        ),
        (MINIMAL.replace('always = ["A:1"]', 'always = ["Z:1"]'), "always names undeclared control"),
        (MINIMAL + '[bot_subject]\nalways = ["Q:1"]\n', "bot_subject.always names undeclared"),
        (MINIMAL.replace('"attest:*" = ["A:2", "B:3"]', '"attest:*" = "A:2"'), "must be a list"),
        (MINIMAL.replace('title = "two"', 'title = ""'), "needs a non-empty title"),
        (MINIMAL.replace('[controls."B:3"]', '[controls."B3"]'), "must be FRAMEWORK:ID"),
        ("extra = 1\n" + MINIMAL, "unknown key"),
        ("not toml [", "controls.toml"),
    ],
)
def test_map_validation(tmp_path, text, message):
    path = tmp_path / "controls.toml"
    path.write_text(text)
    with pytest.raises(ControlMapError, match=message):
        ControlMap.load(path)


def test_validate_ids_for_policy_rules(controls):
    assert controls.validate(["SOC2:CC6.3"]) == ("SOC2:CC6.3",)
    with pytest.raises(ControlMapError, match=r"rule\.admin.*SOC2:CC9\.9"):
        controls.validate(["SOC2:CC6.3", "SOC2:CC9.9"], where="rule.admin")
