"""The optional health endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` on one small aiohttp app.

Off unless a port is configured (``WARDEN_HEALTH_PORT`` or ``[warden].health_port``); it listens on
127.0.0.1 unless ``health_host`` says otherwise, so metrics are never exposed by accident. It runs
in the bot's event loop and starts and stops with it (``async with HealthServer(...)``).
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.health import metrics
from bot.health.facts import QUERY_TIMEOUT_SECONDS, DatabaseFacts

if TYPE_CHECKING:
    from bot.client import WardenBot

log = logging.getLogger(__name__)

# Sweeps run every 10 s; none for this long means the scheduler has stopped.
SWEEP_STALE_SECONDS = 60.0


class HealthServer:
    def __init__(
        self,
        bot: WardenBot,
        sessions: async_sessionmaker[AsyncSession],
        bind: tuple[str, int] | None,
        *,
        sweep_stale_seconds: float = SWEEP_STALE_SECONDS,
        db_timeout: float = QUERY_TIMEOUT_SECONDS,
    ) -> None:
        self.bot = bot
        self.bind = bind
        self._sweep_stale = sweep_stale_seconds
        self._facts = DatabaseFacts(sessions, bot.clock, timeout=db_timeout)
        self._runner: web.AppRunner | None = None
        self._started = time.monotonic()
        self.port: int | None = None
        bot.add_listener(self._on_interaction, "on_interaction")
        metrics.instrument_databases()

    async def _on_interaction(self, interaction: Any) -> None:
        metrics.interaction_received(interaction)

    # ------------------------------------------------------------------ checks

    def _gateway_ok(self) -> bool:
        bot = self.bot
        ws = getattr(bot, "ws", None)
        return bot.is_ready() and not bot.is_closed() and ws is not None and bool(getattr(ws, "open", False))

    def _sweeps_ok(self) -> bool:
        age = metrics.last_sweep_age()
        if age is None:  # none yet: fine while starting up
            return time.monotonic() - self._started < self._sweep_stale
        return age < self._sweep_stale

    async def failing_checks(self) -> list[str]:
        failing = []
        if not self._gateway_ok():
            failing.append("gateway: not connected to Discord")
        if not await self._facts.ping():
            failing.append(f"database: no answer within {self._facts.timeout:g}s")
        if not self._sweeps_ok():
            failing.append(f"sweeps: none finished in the last {self._sweep_stale:g}s")
        return failing

    # ------------------------------------------------------------------ handlers

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        failing = await self.failing_checks()
        if failing:
            return web.Response(status=503, text="not ready\n" + "".join(f"{f}\n" for f in failing))
        return web.Response(text="ready\n")

    async def metrics(self, _request: web.Request) -> web.Response:
        await self._facts.refresh()
        metrics.settle_interactions()
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        if self.bind is None or self._runner is not None:
            return
        metrics.REGISTRY.register(self._facts)
        host, port = self.bind
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            metrics.REGISTRY.unregister(self._facts)
            from bot.startup import StartupError

            raise StartupError(
                f"the health endpoint cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another WARDEN_HEALTH_PORT / [warden].health_port"
            ) from None
        self._runner = runner
        sockets = [s for s in (runner.addresses or [])]
        self.port = sockets[0][1] if sockets else port
        log.info("health endpoint on http://%s:%s (/healthz, /readyz, /metrics)", host, self.port)

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self._runner.cleanup()
        self._runner = None
        metrics.REGISTRY.unregister(self._facts)

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
