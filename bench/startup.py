"""Figure 6: start-to-ready time and resident memory of ``warden run`` beside a bare discord.py client.

Both run as their own process against one sandbox holding ``guilds`` x ``members``; Warden's
database already holds ``grants`` active grants. Ready means: Warden's ``/readyz`` answers 200
(gateway connected, database reachable, sweeps running); the floor printed READY from ``on_ready``
(discord.py has received every guild). Memory is VmRSS from /proc once ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import active_grant, insert_grants
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine
from bot.ledger import Signer
from sandbox import SandboxDiscord
from sandbox.harness import build_guild

ROOT = Path(__file__).resolve().parents[1]

FLOOR = """
import asyncio, os, discord
intents = discord.Intents.default()
intents.members = True
client = discord.Client(intents=intents, guild_ready_timeout=2.0)
@client.event
async def on_ready():
    print("READY", len(client.guilds), flush=True)
client.run(os.environ["BENCH_TOKEN"], log_handler=None)
"""


def _policy(n: int) -> str:
    return "".join(
        f'\n[guild.g{i}]\napprovals_channel = "approvals"\ngovernance_channel = "governance"\n'
        f'\n[scope.deploy-{i}]\nguild = "g{i}"\nkind = "role"\nrole = "deployers"\nmax_duration = "8h"\n'
        f'approvers = ["leads"]\nrequesters = ["engineers"]\n'
        for i in range(n)
    )


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ready_http(port: int) -> bool:
    with contextlib.suppress(OSError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readline()
        writer.close()
        return b" 200 " in head
    return False


async def _run(cmd: list[str], env: dict[str, str], cwd: Path, ready: Any, timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read())
    try:
        while not await ready(lines):
            if proc.returncode is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"{cmd[2]} never became ready:\n" + "\n".join(lines[-20:]))
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        await asyncio.sleep(1.0)  # let start-up work settle before reading memory
        return {"ready_seconds": round(seconds, 2), "rss_mb": _rss_mb(proc.pid)}
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 15)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        reader.cancel()


async def measure(tmp: Path, guilds: int, members: int, grants: int) -> dict[str, Any]:
    async with SandboxDiscord() as sb:
        built = []
        for i in range(guilds):
            built.append(
                build_guild(
                    sb,
                    {
                        "name": f"g{i}",
                        "roles": [{"name": "engineers"}, {"name": "leads"}, {"name": "deployers"}],
                        "members": [{"name": f"u{i}-{j}", "roles": ["engineers"]} for j in range(members)],
                        "channels": [{"name": "approvals"}, {"name": "governance"}],
                    },
                )
            )
        db = tmp / "startup.db"
        url = f"sqlite+aiosqlite:///{db}"
        engine = create_engine(url)
        await upgrade_to_head(engine)
        now = dt.datetime.now(dt.UTC)
        rows = []
        for k in range(grants):
            g = built[k % guilds]
            rows.append(
                active_grant(
                    guild_id=g.id,
                    scope_id=f"deploy-{k % guilds}",
                    subject_id=g.member(f"u{k % guilds}-{(k // guilds) % members}").id,
                    role_id=g.role("deployers").id,
                    now=now,
                    expires_at=now + dt.timedelta(hours=8),
                    duration_seconds=28800,
                )
            )
        await insert_grants(engine, rows)
        await engine.dispose()
        config = tmp / "startup.toml"
        config.write_text(_policy(guilds), encoding="utf-8")
        key = tmp / "startup.pem"
        Signer.from_file(key, create=True)
        port = _free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
        floor_env = {**base, "BENCH_TOKEN": sb.token}
        floor_script = tmp / "floor_client.py"
        floor_script.write_text(
            "from bot.discord_endpoints import point_discord_at\n"
            f"point_discord_at({sb.api_url!r}, {sb.gateway_url!r})\n{FLOOR}",
            encoding="utf-8",
        )

        async def floor_ready(lines: list[str]) -> bool:
            return any(line.startswith("READY") for line in lines)

        warden_env = {
            **base,
            "WARDEN_TOKEN": sb.token,
            "WARDEN_DISCORD_API_URL": sb.api_url,
            "WARDEN_DISCORD_GATEWAY_URL": sb.gateway_url,
            "WARDEN_DATABASE_URL": url,
            "WARDEN_SIGNING_KEY": str(key),
            "WARDEN_HEALTH_PORT": str(port),
        }

        async def warden_ready(lines: list[str]) -> bool:
            return await _ready_http(port)

        floor = await _run([sys.executable, str(floor_script), "floor"], floor_env, tmp, floor_ready, 300)
        warden = await _run(
            [sys.executable, "-m", "bot", "run", "--config", str(config)], warden_env, tmp, warden_ready, 300
        )
    return {"guilds": guilds, "members": members, "grants": grants, "warden": warden, "floor": floor}
