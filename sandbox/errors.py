"""Exceptions of the sandbox (for test authors) and Discord API errors (for the bot)."""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """A test drove the sandbox into something Discord's client would not allow."""


class SandboxTimeout(SandboxError, TimeoutError):
    """The bot did not do what the test was waiting for in time."""


class DiscordAPIError(Exception):
    """Raised inside REST handlers; rendered as Discord's JSON error body."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        errors: dict | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.body = body

    def payload(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            data["errors"] = self.errors
        return data


def unknown(what: str, code: int) -> DiscordAPIError:
    return DiscordAPIError(404, code, f"Unknown {what}")


def missing_permissions() -> DiscordAPIError:
    return DiscordAPIError(403, 50013, "Missing Permissions")


def missing_access() -> DiscordAPIError:
    return DiscordAPIError(403, 50001, "Missing Access")
