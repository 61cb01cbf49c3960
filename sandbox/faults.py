"""Injected faults: failing or slow routes, to exercise the bot's error handling."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


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
    # chaos: a random fraction of the matching requests fails, each with one of these statuses
    rate: float = 1.0
    statuses: tuple[int, ...] = ()
    skip_prefixes: tuple[str, ...] = ()
    mutations_only: bool = False
    rng: random.Random = field(default_factory=random.Random)
    seen: int = 0  # matching requests, failed or not

    def matches(self, method: str, template: str | None, path: str) -> bool:
        if self.mutations_only and method in ("GET", "HEAD", "OPTIONS"):
            return False
        if self.skip_prefixes and path.removeprefix("/api/v10").startswith(self.skip_prefixes):
            return False
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

    def chaos(
        self,
        rate: float,
        statuses: tuple[int, ...] = (500, 502, 503, 429),
        *,
        seed: int = 0,
        skip_prefixes: tuple[str, ...] = ("/interactions/", "/webhooks/"),
        retry_after: float = 0.05,
    ) -> _Rule:
        """Fail ``rate`` of the bot's mutations (POST/PUT/PATCH/DELETE), each with a random status.

        Interaction callbacks and follow-ups (``skip_prefixes``) are left alone: Discord never
        retries those, so failing them tests nothing but the sandbox. ``rule.hits`` counts the
        faults injected, ``rule.seen`` the mutations that could have failed.
        """
        rule = _Rule(
            "fail", None, None, times=None, retry_after=retry_after, rate=rate, statuses=statuses,
            skip_prefixes=skip_prefixes, mutations_only=True, rng=random.Random(seed),
        )  # fmt: skip
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()

    def __bool__(self) -> bool:
        return bool(self._rules)

    def take(self, kind: str, method: str, template: str | None, path: str) -> _Rule | None:
        for rule in self._rules:
            if rule.kind == kind and not rule.exhausted and rule.matches(method, template, path):
                if rule.statuses:
                    rule.seen += 1
                    if rule.rng.random() >= rule.rate:
                        continue
                    rule.status = rule.rng.choice(rule.statuses)
                rule.hits += 1
                return rule
        return None
