"""A local Discord emulator for Warden's tests, demos and benchmarks.

``SandboxDiscord`` serves Discord's REST API (``/api/v10``) and gateway on 127.0.0.1
so the unmodified discord.py client can connect to it (see :func:`point_discord_at`),
with Discord's semantics (permissions, role hierarchy, interaction deadlines, audit
log, resume) and request validation against Discord's OpenAPI description.
"""

from bot.discord_endpoints import point_discord_at, reset_discord_endpoints
from sandbox.conformance import Conformance
from sandbox.errors import DiscordAPIError, SandboxError, SandboxTimeout
from sandbox.interactions import InteractionOutcome
from sandbox.models import (
    SChannel,
    SGuild,
    SIntegration,
    SMember,
    SMessage,
    SOverwrite,
    SRole,
    SUser,
    SWebhook,
)
from sandbox.server import SandboxDiscord

__all__ = [
    "Conformance",
    "DiscordAPIError",
    "InteractionOutcome",
    "SChannel",
    "SGuild",
    "SIntegration",
    "SMember",
    "SMessage",
    "SOverwrite",
    "SRole",
    "SUser",
    "SWebhook",
    "SandboxDiscord",
    "SandboxError",
    "SandboxTimeout",
    "point_discord_at",
    "reset_discord_endpoints",
]
