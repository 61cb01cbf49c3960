"""Point an unmodified discord.py at another Discord: a REST proxy, the local sandbox, any compatible server.

Production behaviour (``WARDEN_DISCORD_API_URL`` / ``_GATEWAY_URL``), so it lives in ``bot``; the sandbox uses it too.
"""

from __future__ import annotations

import discord.gateway
import discord.http
import yarl


def point_discord_at(api_url: str, gateway_url: str) -> None:
    """Make discord.py's REST and gateway code talk to ``api_url`` / ``gateway_url``.

    ``api_url`` ends in the version (``http://127.0.0.1:PORT/api/v10``); ``gateway_url``
    is the websocket root (``ws://127.0.0.1:PORT/``). Process-wide: these are class attributes.
    """
    discord.http.Route.BASE = api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def reset_discord_endpoints() -> None:
    """Back to the real Discord."""
    point_discord_at("https://discord.com/api/v10", "wss://gateway.discord.gg/")
