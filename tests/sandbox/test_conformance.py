"""Requests are checked against Discord's OpenAPI description."""

from __future__ import annotations

import aiohttp
import pytest

from sandbox import SandboxDiscord


async def _call(sb, method, path, **kw):
    headers = {"Authorization": f"Bot {sb.token}"}
    async with aiohttp.ClientSession() as s, s.request(method, sb.api_url + path, headers=headers, **kw) as r:
        return r.status, r.headers.get("Content-Type"), await r.json()


@pytest.mark.expect_violations  # sends bad requests on purpose (see tests/conformance_plugin.py)
async def test_invalid_body_is_a_violation():
    async with SandboxDiscord() as sb:
        g = sb.create_guild("acme")
        ch = g.channel("general")
        status, ctype, body = await _call(sb, "POST", f"/channels/{ch.id}/messages", json={"content": 5})
        assert status == 400 and ctype == "application/json"
        assert body["code"] == 50035 and "body.content" in body["errors"]
        assert len(sb.conformance.violations) == 1
        assert "create_message" in sb.conformance.violations[0]
        assert "5 is not of type 'string'" in sb.conformance.violations[0]
        status, _, body = await _call(
            sb, "POST", f"/channels/{ch.id}/messages", json={"content": "x", "components": [{"type": 99}]}
        )
        assert status == 400 and len(sb.conformance.violations) == 2
        status, _, body = await _call(sb, "GET", "/no/such/route")
        assert status == 404 and body["code"] == 0
        assert "no such route" in sb.conformance.violations[-1]
        status, _, body = await _call(sb, "GET", f"/guilds/{g.id}/audit-logs", params={"limit": "500"})
        assert status == 400 and "query.limit" in sb.conformance.violations[-1]
        try:
            sb.conformance.assert_ok()
        except AssertionError as e:
            assert "4 Discord API conformance violation(s)" in str(e)
        else:
            raise AssertionError("assert_ok should fail")


async def test_snowflake_integers_accepted(sandbox, world):
    status, _, body = await _call(
        sandbox, "POST", "/users/@me/channels", json={"recipient_id": world["alice"].id}
    )
    assert status == 200 and body["type"] == 1
    status, _, body = await _call(
        sandbox, "POST", "/users/@me/channels", json={"recipient_id": str(world["bob"].id)}
    )
    assert status == 200
    assert sandbox.conformance.violations == []


async def test_operations_recorded(sandbox, world, tinybot):
    await sandbox.slash(world["g"], world["alice"], "ping")
    ops = sandbox.conformance.operations
    assert {
        "get_my_user",
        "get_my_oauth2_application",
        "bulk_set_application_commands",
        "create_interaction_response",
    } <= ops


async def test_auth_and_rate_limit_headers(sandbox):
    async with aiohttp.ClientSession() as s, s.get(sandbox.api_url + "/users/@me") as r:
        assert r.status == 401
    async with (
        aiohttp.ClientSession() as s,
        s.get(sandbox.api_url + "/users/@me", headers={"Authorization": f"Bot {sandbox.token}"}) as r,
    ):
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        for h in (
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "X-RateLimit-Reset-After",
            "X-RateLimit-Bucket",
        ):
            assert h in r.headers
