"""Injected faults: failing or slow routes, to exercise the bot's error handling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Rule:
    kind: str  # "fail" | "delay"
    method: str | None
    path: str | None
    status: int = 500
    times: int | None = None
    seconds: float = 0.0
    retry_after: float = 0.05
    code: int = 0
    message: str | None = None
    hits: int = 0

    def matches(self, method: str, template: str | None, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is None:
            return True
        want = "/" + self.path.strip("/")
        if want.startswith("/api/v10/"):
            want = want[len("/api/v10") :]
        return want in (template, path)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class Faults:
    """``sb.faults``: ``fail(...)``, ``delay(...)``, ``clear()``.

    ``path`` is the OpenAPI template (``/guilds/{guild_id}/members/{user_id}/roles/{role_id}``)
    or a concrete path (``/guilds/1/members/2/roles/3``), without the ``/api/v10`` prefix;
    ``method``/``path`` ``None`` match anything.
    """

    def __init__(self) -> None:
        self._rules: list[_Rule] = []

    def fail(
        self,
        method: str | None = None,
        path: str | None = None,
        status: int = 500,
        times: int | None = 1,
        *,
        retry_after: float = 0.05,
        code: int = 0,
        message: str | None = None,
    ) -> _Rule:
        rule = _Rule("fail", method, path, status, times, retry_after=retry_after, code=code, message=message)
        self._rules.append(rule)
        return rule

    def delay(
        self,
        method: str | None = None,
        path: str | None = None,
        seconds: float = 0.5,
        times: int | None = None,
    ) -> _Rule:
        rule = _Rule("delay", method, path, seconds=seconds, times=times)
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()

    def __bool__(self) -> bool:
        return bool(self._rules)

    def take(self, kind: str, method: str, template: str | None, path: str) -> _Rule | None:
        for rule in self._rules:
            if rule.kind == kind and not rule.exhausted and rule.matches(method, template, path):
                rule.hits += 1
                return rule
        return None
