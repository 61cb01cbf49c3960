"""InventoryService: snapshots, baselines and drift, owners, risk-sorted pages, and export."""

from __future__ import annotations

import csv
import datetime as dt
import json

import discord
import pytest

from bot.db.models import IdentityKind, OwnerSource
from bot.inventory.export import render, write_both
from bot.inventory.permissions import ChannelKind, Overwrite, OverwriteKind
from bot.inventory.service import InventoryService
from bot.inventory.snapshot import BotData, ChannelData, GuildSnapshot, IntegrationData, WebhookData
from bot.services.errors import AlreadyDecided, BadInput, NotAllowed, NotFound
from bot.tokens.service import TokenService

P = discord.Permissions
G = 100
D = dt.timedelta(days=1)
ADMIN_ROLE, HOOK_ROLE, BASIC_ROLE = 201, 202, 203
ALICE, BOB, CAROL = 11, 12, 13
ROLES = {
    G: P(view_channel=True, send_messages=True).value,
    ADMIN_ROLE: P(administrator=True).value,
    HOOK_ROLE: P(manage_webhooks=True).value,
    BASIC_ROLE: P(embed_links=True).value,
}
CHANNELS = (
    ChannelData(1),
    ChannelData(2, overwrites=(Overwrite(G, OverwriteKind.ROLE, deny=P(view_channel=True).value),)),
    ChannelData(3, ChannelKind.VOICE),
    ChannelData(4, ChannelKind.CATEGORY),
)


def snapshot(*, hook_roles: tuple[int, ...] = (HOOK_ROLE,), with_webhook: bool = True) -> GuildSnapshot:
    return GuildSnapshot(
        guild_id=G,
        owner_id=1,
        role_permissions=ROLES,
        channels=CHANNELS,
        bots=(
            BotData(501, "nuker", role_ids=(ADMIN_ROLE,)),
            BotData(502, "hooks", role_ids=hook_roles, added_by=ALICE),
            BotData(503, "quiet", role_ids=(BASIC_ROLE,)),
        ),
        webhooks=(WebhookData(601, "ci", channel_id=1, creator_id=BOB),) if with_webhook else (),
        integrations=(
            IntegrationData(
                701, "hooks app", scopes=("bot", "applications.commands"), added_by=ALICE, bot_id=502
            ),
        ),
    )


@pytest.fixture
def inventory(session_factory, clock) -> InventoryService:
    return InventoryService(session_factory, clock, dormant_after=30 * D)


async def _by_name(inventory: InventoryService, name: str):
    return next(i for i in await inventory.items(G, include_gone=True) if i.name == name)


async def test_refresh_computes_reach_infers_owners_and_sorts_by_risk(inventory) -> None:
    report = await inventory.refresh(snapshot())
    assert len(report.added) == 5 and report.gone == ()
    items = await inventory.items(G)
    assert items[0].name == "nuker"  # Administrator and no owner
    nuker = items[0]
    assert nuker.permissions == P.all().value and nuker.flagged_unowned
    assert nuker.channel_count == 3 and nuker.channel_reach == 3  # the category does not count
    assert "+20 has no owner" in nuker.risk.explain()
    hooks = await _by_name(inventory, "hooks")
    assert hooks.owner_id == ALICE and hooks.owner_source == OwnerSource.INFERRED
    assert hooks.channel_permissions[2] == 0  # @everyone cannot see channel 2
    assert hooks.channel_reach == 2
    webhook = await _by_name(inventory, "ci")
    assert webhook.owner_id == BOB and webhook.channel_permissions == {
        1: P(view_channel=True, send_messages=True).value
    }
    integration = await _by_name(inventory, "hooks app")
    assert integration.permissions == hooks.permissions and integration.scopes == (
        "bot",
        "applications.commands",
    )
    assert sorted(report.owners_inferred) == sorted([hooks.id, webhook.id, integration.id])
    assert [i.risk.score for i in items] == sorted((i.risk.score for i in items), reverse=True)


async def test_drift_since_baseline_and_accepting_it(inventory) -> None:
    await inventory.refresh(snapshot())
    before = await _by_name(inventory, "hooks")
    await inventory.refresh(snapshot(hook_roles=(HOOK_ROLE, ADMIN_ROLE)))
    grown = await _by_name(inventory, "hooks")
    assert grown.risk.score > before.risk.score
    assert any(r.text.startswith("gained since its baseline:") for r in grown.risk.reasons)
    assert "administrator" in grown.record()["drift_since_baseline"]  # type: ignore[operator]
    accepted = await inventory.accept_baseline(G, grown.id)
    assert not any(r.text.startswith("gained since") for r in accepted.risk.reasons)


async def test_gone_and_back(inventory) -> None:
    await inventory.refresh(snapshot())
    report = await inventory.refresh(snapshot(with_webhook=False))
    webhook = await _by_name(inventory, "ci")
    assert report.gone == (webhook.id,) and webhook.gone_at is not None
    assert all(i.name != "ci" for i in await inventory.items(G))
    with pytest.raises(AlreadyDecided):
        await inventory.set_owner(G, webhook.id, CAROL, actor_id=1)
    await inventory.refresh(snapshot())
    assert (await _by_name(inventory, "ci")).gone_at is None


async def test_owners_set_inferred_confirmed(inventory) -> None:
    await inventory.refresh(snapshot())
    nuker = await _by_name(inventory, "nuker")
    hooks = await _by_name(inventory, "hooks")
    # Inferred from the audit log when nobody owns it; an explicit owner is never overridden.
    inferred = await inventory.infer_owner(G, IdentityKind.BOT, "501", CAROL)
    assert (
        inferred is not None and inferred.owner_id == CAROL and inferred.owner_source == OwnerSource.INFERRED
    )
    with pytest.raises(NotAllowed):
        await inventory.confirm_owner(G, nuker.id, BOB)
    confirmed = await inventory.confirm_owner(G, nuker.id, CAROL)
    assert confirmed.owner_source == OwnerSource.CONFIRMED
    assert "owner inferred" not in " ".join(confirmed.risk.explain())
    with pytest.raises(AlreadyDecided):
        await inventory.confirm_owner(G, nuker.id, CAROL)
    assert await inventory.infer_owner(G, IdentityKind.BOT, "501", BOB) is None  # confirmed owner stays
    explicit = await inventory.set_owner(G, hooks.id, BOB, actor_id=1)
    assert explicit.owner_id == BOB and explicit.owner_source == OwnerSource.EXPLICIT
    assert await inventory.infer_owner(G, IdentityKind.BOT, "502", ALICE) is None
    assert await inventory.infer_owner(G, IdentityKind.BOT, "999", ALICE) is None
    with pytest.raises(NotFound):
        await inventory.set_owner(G + 1, hooks.id, BOB, actor_id=1)  # another guild's id


async def test_dormancy_from_activity(inventory, clock) -> None:
    await inventory.refresh(snapshot())
    assert await inventory.record_activity(G, IdentityKind.WEBHOOK, "601", clock.now())
    assert not await inventory.record_activity(G, IdentityKind.WEBHOOK, "999", clock.now())
    clock.advance(31 * D)
    await inventory.record_activity(G, IdentityKind.BOT, "502", clock.now() - D)
    webhook = await _by_name(inventory, "ci")
    assert "+15 no activity seen for 31 days" in webhook.risk.explain()
    hooks = await _by_name(inventory, "hooks")
    assert not any("no activity" in r for r in hooks.risk.explain())
    quiet = await _by_name(inventory, "quiet")
    assert "+15 no activity seen since first seen, 31 days" in quiet.risk.explain()


async def test_tokens_appear_with_their_holder_as_owner(inventory, session_factory, clock) -> None:
    tokens = TokenService(session_factory, clock)
    issued = await tokens.issue(guild_id=G, scope_id="ci", subject_id=CAROL, ttl=dt.timedelta(hours=1))
    await inventory.refresh(snapshot())
    token = await _by_name(inventory, f"token {issued.info.id} for scope ci")
    assert token.kind == "token" and token.owner_id == CAROL and token.owner_source == OwnerSource.EXPLICIT
    await tokens.revoke(issued.info.id, reason="test")
    report = await inventory.refresh(snapshot())
    assert report.gone == (token.id,)
    # A token past its expiry leaves the inventory even before the expiry sweep marks it.
    later = await tokens.issue(guild_id=G, scope_id="ci", subject_id=CAROL, ttl=dt.timedelta(hours=1))
    await inventory.refresh(snapshot())
    clock.advance(dt.timedelta(hours=2))
    report = await inventory.refresh(snapshot())
    assert [i.name for i in await inventory.items(G, include_gone=True) if i.id in report.gone] == [
        f"token {later.info.id} for scope ci"
    ]


async def test_pages(inventory) -> None:
    await inventory.refresh(snapshot())
    first = await inventory.page(G, 1, per_page=2)
    assert (first.page, first.pages, first.total, len(first.items)) == (1, 3, 5, 2)
    last = await inventory.page(G, 3, per_page=2)
    assert len(last.items) == 1
    everything = [i.id for p in (1, 2, 3) for i in (await inventory.page(G, p, per_page=2)).items]
    assert everything == [i.id for i in await inventory.items(G)]
    with pytest.raises(BadInput):
        await inventory.page(G, 4, per_page=2)
    with pytest.raises(BadInput):
        await inventory.page(G, 1, per_page=0)


async def test_export_json_and_csv(inventory, tmp_path) -> None:
    await inventory.refresh(snapshot())
    items = await inventory.items(G)
    json_path, csv_path = write_both(items, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert [r["name"] for r in data["items"]] == [i.name for i in items]
    nuker = data["items"][0]
    assert nuker["owner_id"] is None and nuker["risk_score"] == items[0].risk.score
    assert "administrator" in nuker["permissions"] and nuker["risk_reasons"]
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["name"] for r in rows] == [i.name for i in items]
    assert rows[0]["owner_id"] == "" and "has no owner" in rows[0]["risk_reasons"]
    assert render([], "csv").startswith("id,kind,external_id")
