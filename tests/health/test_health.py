"""The health endpoint and metrics, scraped while the real bot runs against the sandbox.

Two ways: `warden run` as a subprocess with WARDEN_HEALTH_PORT (what an operator deploys), and
the bot in this process (SandboxWorld) to stop the database and the gateway under it.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.health import metrics
from bot.health.server import HealthServer
from bot.health.startup import MIN_PERMISSIONS, invite_url, log_startup_report
from bot.policy import load_policy
from sandbox import SandboxDiscord
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld, build_guild
from tests.helpers import REPO

TOKEN = "sandbox-health-secret-token-5e1d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels → value, parsed with the official client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def get(url: str, timeout: float = 10) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r,
    ):
        return r.status, await r.text()


# ------------------------------------------------------------------ warden run, scraped


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


async def test_warden_run_serves_health_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with SandboxDiscord(token=TOKEN) as sb:
        guild = build_guild(sb, ACME)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(EXAMPLE_CONFIG),
            cwd=tmp_path,
            env=_env(
                WARDEN_TOKEN=sb.token,
                WARDEN_DISCORD_API_URL=sb.api_url,
                WARDEN_DISCORD_GATEWAY_URL=sb.gateway_url,
                WARDEN_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
                WARDEN_SIGNING_KEY=str(tmp_path / "k.pem"),
                WARDEN_HEALTH_PORT=str(port),
                WARDEN_LOG_FORMAT="json",
            ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await sb.wait_until_ready(timeout=20)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while True:
                try:
                    status, body = await get(f"{base}/readyz")
                except aiohttp.ClientError:
                    status, body = 0, ""
                if status == 200:
                    break
                assert loop.time() < deadline, f"/readyz never became ready: {status} {body}"
                await asyncio.sleep(0.1)
            assert body == "ready\n"
            assert await get(f"{base}/healthz") == (200, "ok\n")

            # One Discord 5xx and one 429 on the card post: discord.py retries, and both are counted.
            sb.faults.fail(method="POST", path="/channels/{channel_id}/messages", status=500, times=1)
            sb.faults.fail(method="POST", path="/channels/{channel_id}/messages", status=429, times=1)
            alice = guild.member("alice")
            await sb.autocomplete(guild, alice, "jit request", focused="scope", scope="de")
            reply = await sb.slash(
                guild, alice, "jit request", scope="deploy", duration="1h", reason="metrics", timeout=10
            )
            assert "waiting for approval" in reply.text
            await sb.wait_for_message(guild.channel("approvals"), "Access request #1", timeout=10)
            refused = await sb.slash(
                guild, guild.member("erin"), "jit request", scope="deploy", duration="1h", reason="x"
            )
            assert "deploy" in refused.text

            # An answer is counted "ok" once no error followed it for a moment (deferred commands).
            deadline = loop.time() + 10
            while True:
                status, text = await get(f"{base}/metrics")
                assert status == 200
                m = samples(text)
                if value(m, "warden_interactions_total", kind="autocomplete", outcome="ok") == 1:
                    break
                assert loop.time() < deadline, text
                await asyncio.sleep(0.2)
            assert value(m, "warden_interactions_received_total", kind="application_command") == 2
            assert value(m, "warden_interactions_total", kind="application_command", outcome="ok") == 1
            assert value(m, "warden_interactions_total", kind="application_command", outcome="refused") == 1
            assert value(m, "warden_interactions_total", kind="autocomplete", outcome="ok") == 1
            assert value(m, "warden_interaction_answer_seconds_count", kind="application_command") == 2
            assert value(m, "warden_requests_total", outcome="requested") == 1
            assert value(m, "warden_decisions_total", outcome="requested") == 1
            assert value(m, "warden_pending_requests") == 1
            assert value(m, "warden_active_grants") == 0
            assert value(m, "warden_removals_overdue") == 0
            assert value(m, "warden_database_up") == 1
            assert ("warden_narrative_outbox_backlog", ()) in m
            assert value(m, "warden_discord_http_responses_total", status="5xx") >= 1
            assert value(m, "warden_discord_http_responses_total", status="429") >= 1
            assert value(m, "warden_discord_http_responses_total", status="2xx") > 5
            assert value(m, "warden_sweep_duration_seconds_count") >= 1
            assert TOKEN not in text
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                output, _ = await asyncio.wait_for(proc.communicate(), 15)
            except TimeoutError:
                proc.kill()
                output, _ = await proc.communicate()
    log = output.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert TOKEN not in log, [line for line in log.splitlines() if TOKEN in line]
    assert "Traceback" not in log, log
    import json

    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    assert any("health endpoint on http://127.0.0.1:" in e["message"] for e in lines)
    assert any(e["message"].startswith("doctor: acme") for e in lines)
    assert any("audit rules active" in e["message"] and e["level"] == "INFO" for e in lines)
    decided = [e for e in lines if e["message"].startswith("decision requested")]
    assert decided and decided[0]["ledger_entry_id"] >= 1  # a field the old fixed list dropped


def test_health_endpoint_is_off_by_default_and_local_when_on() -> None:
    from bot.settings import load_settings

    assert load_settings().resolved_health(None) is None
    assert load_settings(health_port=9464).resolved_health(None) == ("127.0.0.1", 9464)
    assert load_settings(health_port="9464", health_host="0.0.0.0").resolved_health(None) == ("0.0.0.0", 9464)
    from bot.policy import parse_policy

    policy = parse_policy(
        {
            "warden": {"health_port": 9100},
            "guild": {"acme": {"approvals_channel": "a", "governance_channel": "g"}},
        }
    )
    assert load_settings().resolved_health(policy) == ("127.0.0.1", 9100)
    assert load_settings(health_port=9200).resolved_health(policy) == ("127.0.0.1", 9200)


# ------------------------------------------------------------------ readiness failures, in process


@pytest.fixture
async def world(db_url, clock):
    async with SandboxWorld(load_policy(EXAMPLE_CONFIG), database_url=db_url, clock=clock) as w:
        w.add_guild(copy.deepcopy(ACME))
        await w.start_bot()
        yield w


async def test_readyz_names_the_failing_checks_and_metrics_never_hang(world: SandboxWorld) -> None:
    bot = world.bot
    async with HealthServer(bot, bot.session_factory, ("127.0.0.1", 0), db_timeout=1.0) as health:
        base = f"http://127.0.0.1:{health.port}"
        assert await get(f"{base}/readyz") == (200, "ready\n")

        # An overdue removal: a grant expired 5 minutes ago that nobody has removed yet.
        alice = world.guild.member("alice")
        await world.sb.slash(world.guild, alice, "jit request", scope="deploy", duration="1h", reason="r")
        card = await world.sb.wait_for_message(world.guild.channel("approvals"), "Access request #1")
        await world.sb.click(world.guild.member("bob"), card, "Approve")
        await world.sb.click(world.guild.member("carol"), card, "Approve")
        await world.eventually(lambda: alice.has_role("deployers"), what="grant applied")
        world.clock.advance(dt.timedelta(hours=1, minutes=5))  # no sweep yet: the removal is overdue
        m = samples((await get(f"{base}/metrics"))[1])
        assert value(m, "warden_active_grants") == 1
        assert value(m, "warden_removals_due") == 1 and value(m, "warden_removals_overdue") == 1
        assert value(m, "warden_removal_oldest_overdue_seconds") == pytest.approx(300, abs=1)
        await world.run_due()
        m = samples((await get(f"{base}/metrics"))[1])
        assert value(m, "warden_removals_due") == 0 and value(m, "warden_active_grants") == 0
        assert value(m, "warden_grants_total", outcome="expired") >= 1
        assert value(m, "warden_votes_total") >= 2

        await world.database_down()
        await world.run_due()  # the sweep's steps fail: the database does not answer
        started = time.monotonic()
        status, body = await get(f"{base}/readyz")
        assert status == 503 and "database: no answer" in body and "gateway" not in body
        status, text = await get(f"{base}/metrics")
        assert status == 200 and time.monotonic() - started < 5
        m = samples(text)
        assert value(m, "warden_database_up") == 0 and ("warden_active_grants", ()) not in m
        assert value(m, "warden_database_errors_total", kind="unavailable") >= 1
        await world.database_up()

        await world.sb.disconnect_gateway(code=4000, hold=True)
        await world.eventually(lambda: not health._gateway_ok(), what="gateway seen as down")
        status, body = await get(f"{base}/readyz")
        assert status == 503 and body.splitlines()[1:] == ["gateway: not connected to Discord"]
        world.sb.release_gateway()
        await world.eventually(health._gateway_ok, timeout=10, what="gateway back")
        assert (await get(f"{base}/readyz"))[0] == 200


async def test_readyz_fails_when_sweeps_stop(world: SandboxWorld) -> None:
    bot = world.bot
    async with HealthServer(bot, bot.session_factory, ("127.0.0.1", 0), sweep_stale_seconds=0.2) as health:
        await asyncio.sleep(0.3)
        status, body = await get(f"http://127.0.0.1:{health.port}/readyz")
        assert status == 503 and "sweeps: none finished in the last 0.2s" in body
        await world.run_due()
        assert (await get(f"http://127.0.0.1:{health.port}/readyz"))[0] == 200


async def test_a_taken_port_is_one_clear_line(world: SandboxWorld) -> None:
    from bot.startup import StartupError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{taken}"):
            async with HealthServer(world.bot, world.bot.session_factory, ("127.0.0.1", taken)):
                pass


# ------------------------------------------------------------------ the start-up report


def test_invite_url_has_the_readme_permissions() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"permissions={MIN_PERMISSIONS.value}" in readme
    assert invite_url(1234567890123456789) == (
        "https://discord.com/oauth2/authorize?client_id=1234567890123456789"
        f"&scope=bot+applications.commands&permissions={MIN_PERMISSIONS.value}"
    )
    assert invite_url(1, 2).endswith("&guild_id=2&disable_guild_select=true")


async def test_startup_report_invites_to_missing_guilds_and_summarises_doctor(
    db_url, clock, caplog: pytest.LogCaptureFixture
) -> None:
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8") + (
        '\n[guild.323456789012345678]\napprovals_channel = "approvals"\ngovernance_channel = "governance"\n'
    )
    for scope in ("incident-room", "bot-webhooks", "breakglass-admin"):
        text = text.replace(f"[scope.{scope}]\n", f'[scope.{scope}]\nguild = "acme"\n')
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"warden-health-{os.getpid()}.toml"
    path.write_text(text, encoding="utf-8")
    try:
        policy = load_policy(path)
    finally:
        path.unlink()
    spec = copy.deepcopy(ACME)
    async with SandboxWorld(policy, database_url=db_url, clock=clock) as w:
        w.add_guild(spec)
        caplog.clear()
        with caplog.at_level("INFO", logger="warden.startup"):
            await w.start_bot()
            await log_startup_report(w.bot)
    lines = [r.getMessage() for r in caplog.records if r.name == "warden.startup"]
    invite = [line for line in lines if "not in the configured guild 323456789012345678" in line]
    assert invite and f"client_id={w.sb.application_id}" in invite[0]
    assert "guild_id=323456789012345678" in invite[0]
    assert f"permissions={MIN_PERMISSIONS.value}" in invite[0]
    assert not any("not in the configured guild acme" in line for line in lines)
    assert any(line.startswith("doctor: acme") for line in lines)


def test_metrics_count_decisions_by_family() -> None:
    before = samples(__import__("prometheus_client").generate_latest(metrics.REGISTRY).decode())
    metrics.decision_recorded("denied")
    metrics.decision_recorded("granted")
    metrics.decision_recorded("voted")
    after = samples(__import__("prometheus_client").generate_latest(metrics.REGISTRY).decode())
    assert (
        value(after, "warden_requests_total", outcome="denied")
        == value(before, "warden_requests_total", outcome="denied") + 1
    )
    assert (
        value(after, "warden_grants_total", outcome="granted")
        == value(before, "warden_grants_total", outcome="granted") + 1
    )
    assert value(after, "warden_votes_total") == value(before, "warden_votes_total") + 1


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("health_port", "abc", "WARDEN_HEALTH_PORT: 'abc' is not a TCP port"),
        ("health_port", "0", "WARDEN_HEALTH_PORT: '0' is not a TCP port"),
        ("health_host", "http://0.0.0.0:9", "WARDEN_HEALTH_HOST: 'http://0.0.0.0:9' is not a host name"),
        ("log_format", "xml", "WARDEN_LOG_FORMAT: 'xml' is not a log format; use text or json"),
    ],
)
def test_bad_health_and_log_settings_are_one_line(field: str, value: str, said: str) -> None:
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as exc:
        load_settings(**{field: value})
    assert str(exc.value) == said or str(exc.value).startswith(said)
    assert load_settings(health_host="::1").health_host == "::1"
