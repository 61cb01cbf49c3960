"""Scenario files: a story told in TOML, played by the real Warden against the sandbox.

A scenario names a policy and a server, then lists steps: people run slash commands and
click buttons, an admin changes the server, Discord fails on purpose, the database goes
away, the bot restarts, virtual time passes. Expectations check what people would see.
The runner prints a transcript of what each person saw. The format is documented in
``docs/scenarios.md``; ``warden sandbox --scenario FILE`` runs a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import difflib
import logging
import re
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from bot.clock import ManualClock
from bot.durations import DurationError, format_duration, parse_duration
from bot.policy import Policy, PolicyError, load_policy, parse_policy
from sandbox.errors import SandboxError
from sandbox.harness import ACME, EXAMPLE_CONFIG, SandboxWorld, rehearsal_server, sandbox_tuning
from sandbox.models import SChannel, SGuild, SMember, SMessage, walk_components

DEFAULT_START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
EVENTUALLY_SECONDS = 1.0  # how long a positive expectation may take to come true (DMs are sent after replies)

# ----------------------------------------------------------------------------- the format

TOP_KEYS = ("name", "description", "policy", "now", "guild", "step")
GUILD_KEYS = ("name", "id", "bot_permissions", "roles", "members", "channels")
ROLE_KEYS = ("name", "id", "permissions", "position", "managed")
MEMBER_KEYS = ("name", "id", "roles", "bot", "dms_open")
CHANNEL_KEYS = ("name", "id", "private")

# Every step has exactly one action (or none: a step of only `expect`/`note`).
ACTIONS = (
    "slash",
    "click",
    "select",
    "advance",
    "admin",
    "fault",
    "clear_faults",
    "database",
    "restart",
    "stop",
    "start",
    "disconnect",
)
COMMON_STEP_KEYS = ("note", "guild", "expect")
ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "slash": ("as", "options", "in", "expect_reply"),
    "click": ("as", "on", "custom_id", "forged", "modal", "expect_reply"),
    "select": ("as", "on", "expect_reply"),
    "advance": (),
    "admin": (
        "member",
        "role",
        "permissions",
        "name",
        "channel",
        "target",
        "allow",
        "deny",
        "roles",
        "by",
        "reason",
    ),
    "fault": (),
    "clear_faults": (),
    "database": (),
    "restart": (),
    "stop": (),
    "start": (),
    "disconnect": (),
}
ADMIN_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # action: (required keys, optional keys); `by` (the acting member, default the owner) and
    # `reason` (the audit-log reason) are accepted by all.
    "add_role": (("member", "role"), ()),
    "remove_role": (("member", "role"), ()),
    "set_role_permissions": (("role", "permissions"), ()),
    "create_role": (("name",), ("permissions",)),
    "delete_role": (("role",), ()),
    "add_bot": (("name",), ("permissions",)),
    "create_webhook": (("channel", "name"), ()),
    "add_integration": (("name",), ("type", "scopes")),
    "set_overwrite": (("channel", "target"), ("allow", "deny")),
    "remove_overwrite": (("channel", "target"), ()),
    "add_member": (("name",), ("roles",)),
}
ON_KEYS = ("channel", "dm", "contains", "reply")
FAULT_KEYS = ("route", "method", "path", "status", "times", "retry_after", "code", "message", "delay")
# Friendly names for the routes Warden's actions use (OpenAPI templates, as the sandbox matches them).
ROUTES: dict[str, tuple[str, str]] = {
    "add_role": ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"),
    "remove_role": ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"),
    "set_overwrite": ("PUT", "/channels/{channel_id}/permissions/{overwrite_id}"),
    "delete_overwrite": ("DELETE", "/channels/{channel_id}/permissions/{overwrite_id}"),
    "send_message": ("POST", "/channels/{channel_id}/messages"),
    "edit_message": ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    "open_dm": ("POST", "/users/@me/channels"),
}
# expectation: subject key → the check keys it takes
EXPECT_FORMS: dict[str, tuple[str, ...]] = {
    "member": ("has_role", "lacks_role", "has_overwrite", "lacks_overwrite"),
    "channel": ("message_contains", "no_message_contains", "message_count"),
    "dm": ("message_contains", "no_message_contains", "message_count"),
    "narrative": (),
    "no_narrative": (),
    "ledger": (),
    "reply_contains": (),
    "reply_lacks": (),
    "conformance": (),
}


class ScenarioError(Exception):
    """A scenario file that cannot be run; ``problems`` holds one line per problem."""

    def __init__(self, problems: Iterable[str], source: str = "<scenario>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return f"{self.source}:\n" + "\n".join(f"  - {p}" for p in self.problems)


@dataclasses.dataclass
class Scenario:
    name: str
    description: str
    policy: Policy
    guilds: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    source: str = "<scenario>"
    now: dt.datetime = DEFAULT_START
    policy_note: str = ""  # where the policy came from, when not from the file itself (--config)


@dataclasses.dataclass(frozen=True)
class GivenPolicy:
    """A policy given on the command line (`--scenario FILE --config config.toml`): it replaces the
    file's own ``policy``; a file with no [[guild]] then plays in the server built from it."""

    policy: Policy
    source: str


def _allowed(where: str, table: Mapping[str, Any], allowed: Iterable[str], problems: list[str]) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            problems.append(
                f"{where}.{key}: unknown key{_did_you_mean(key, allowed)}; allowed here: {', '.join(allowed)}"
            )


def _did_you_mean(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _need(where: str, value: Any, kind: type | tuple[type, ...], what: str, problems: list[str]) -> bool:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        problems.append(f"{where}: expected {what}, got {value!r}")
        return False
    if not isinstance(value, kind):
        problems.append(f"{where}: expected {what}, got {value!r}")
        return False
    return True


def _duration_ok(where: str, value: Any, problems: list[str]) -> None:
    try:
        parse_duration(value)
    except DurationError as e:
        problems.append(f"{where}: {e}")


def _check_guild(where: str, g: Any, problems: list[str]) -> None:
    if not _need(where, g, dict, "a table", problems):
        return
    _allowed(where, g, GUILD_KEYS, problems)
    if not isinstance(g.get("name"), str):
        problems.append(f"{where}.name: required: the server's name (text)")
    _id_ok(where, g, problems)
    for part, keys in (("roles", ROLE_KEYS), ("members", MEMBER_KEYS), ("channels", CHANNEL_KEYS)):
        items = g.get(part, [])
        if not _need(f"{where}.{part}", items, list, "an array of tables", problems):
            continue
        for i, item in enumerate(items):
            w = f"{where}.{part}[{i}]"
            if _need(w, item, dict, "a table", problems):
                _allowed(w, item, keys, problems)
                if not isinstance(item.get("name"), str):
                    problems.append(f"{w}.name: required (text)")
                _id_ok(w, item, problems)


def _id_ok(where: str, table: Mapping[str, Any], problems: list[str]) -> None:
    """``id``: the Discord id a policy names it by (a whole number); leave it out for a fresh one."""
    if "id" in table:
        v = table["id"]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            problems.append(f"{where}.id: expected a Discord id (a whole number, no quotes), got {v!r}")


def _check_expect(where: str, e: Any, problems: list[str]) -> None:
    if not _need(where, e, dict, 'a table such as { member = "alice", has_role = "deployers" }', problems):
        return
    subjects = [k for k in e if k in EXPECT_FORMS]
    if len(subjects) != 1:
        found = f"found {', '.join(subjects)}" if subjects else "found none"
        problems.append(f"{where}: needs exactly one of {', '.join(EXPECT_FORMS)} ({found})")
        every = (*EXPECT_FORMS, *{c for checks in EXPECT_FORMS.values() for c in checks})
        for k in e:
            if k not in every:
                problems.append(f"{where}.{k}: unknown key{_did_you_mean(k, every)}")
        return
    subject = subjects[0]
    checks = EXPECT_FORMS[subject]
    _allowed(where, e, (subject, *checks), problems)
    given = [k for k in e if k in checks]
    if checks and len(given) != 1:
        problems.append(f"{where}: {subject} needs exactly one of {', '.join(checks)}")
    if subject in ("member", "channel", "dm", "narrative", "no_narrative", "reply_contains", "reply_lacks"):
        _need(f"{where}.{subject}", e[subject], str, "text", problems)
    if subject == "ledger" and e["ledger"] != "verifies":
        problems.append(f'{where}.ledger: the only check is ledger = "verifies"')
    if subject == "conformance" and e["conformance"] != "ok":
        problems.append(f'{where}.conformance: the only check is conformance = "ok"')
    for k in given:
        if k == "message_count":
            if isinstance(e[k], bool) or not isinstance(e[k], int) or e[k] < 0:
                problems.append(f"{where}.{k}: expected a whole number >= 0, got {e[k]!r}")
        elif k == "message_contains":
            v = e[k]
            if not (isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v))):
                problems.append(f"{where}.{k}: expected text or a list of texts, got {v!r}")
        else:
            _need(f"{where}.{k}", e[k], str, "text", problems)


def _check_step(where: str, s: Any, problems: list[str]) -> None:
    if not _need(where, s, dict, "a table", problems):
        return
    actions = [k for k in s if k in ACTIONS]
    if len(actions) > 1:
        problems.append(f"{where}: one action per step, found {', '.join(actions)}; split it into steps")
        return
    action = actions[0] if actions else None
    allowed = COMMON_STEP_KEYS + ((action, *ACTION_KEYS[action]) if action else ())
    if action is None:
        known = set(COMMON_STEP_KEYS)
        for k in s:
            if k not in known:
                owners = [a for a, keys in ACTION_KEYS.items() if k in keys]
                hint = (
                    f" (it belongs with {' or '.join(owners)})"
                    if owners
                    else _did_you_mean(k, (*ACTIONS, *COMMON_STEP_KEYS))
                )
                problems.append(
                    f"{where}.{k}: unknown key{hint}; a step has one action of {', '.join(ACTIONS)}, "
                    f"and may have {', '.join(COMMON_STEP_KEYS)}"
                )
        if not s:
            problems.append(f"{where}: empty step; give an action ({', '.join(ACTIONS)}) or expect")
    else:
        _allowed(where, s, allowed, problems)
    if "note" in s:
        _need(f"{where}.note", s["note"], str, "text", problems)
    if "guild" in s:
        _need(f"{where}.guild", s["guild"], str, "a server name", problems)
    if "expect" in s:
        exp = s["expect"]
        if isinstance(exp, dict):
            exp = [exp]
        if _need(f"{where}.expect", exp, list, "an array of tables", problems):
            for i, e in enumerate(exp):
                _check_expect(f"{where}.expect[{i}]", e, problems)
    if "expect_reply" in s:
        _need(f"{where}.expect_reply", s["expect_reply"], str, "text", problems)
    if action in ("slash", "click", "select") and not isinstance(s.get("as"), str):
        problems.append(f"{where}.as: required for {action}: the member (name) who acts")
    if action == "slash":
        _need(f"{where}.slash", s["slash"], str, 'a command such as "jit request"', problems)
        if "options" in s:
            _need(f"{where}.options", s["options"], dict, "a table of option = value", problems)
        if "in" in s:
            _need(f"{where}.in", s["in"], str, "a channel name", problems)
    elif action in ("click", "select"):
        if action == "click":
            _need(f"{where}.click", s["click"], str, 'a button label such as "Approve"', problems)
        elif (
            not isinstance(s["select"], list)
            or not s["select"]
            or not all(isinstance(v, str) for v in s["select"])
        ):
            problems.append(
                f'{where}.select: the choices, as a list of names or option values, e.g. ["dave"]'
            )
        on = s.get("on")
        if on is None:
            problems.append(
                f"{where}.on: required for {action}: which message, "
                'e.g. { channel = "approvals", contains = "#1" } or { reply = true }'
            )
        elif _need(f"{where}.on", on, dict, "a table", problems):
            _allowed(f"{where}.on", on, ON_KEYS, problems)
            places = [k for k in ("channel", "dm", "reply") if k in on]
            if len(places) != 1:
                problems.append(f"{where}.on: needs exactly one of channel, dm, reply")
            if "reply" in on and on["reply"] is not True:
                problems.append(f"{where}.on.reply: write reply = true (the previous step's reply)")
        if s.get("forged") and not isinstance(s.get("custom_id"), str):
            problems.append(f"{where}.custom_id: required with forged = true (the custom_id to send)")
        if "modal" in s:
            _need(f"{where}.modal", s["modal"], dict, "a table of field = value", problems)
    elif action == "advance":
        _duration_ok(f"{where}.advance", s["advance"], problems)
    elif action == "admin":
        what = s["admin"]
        if not isinstance(what, str) or what not in ADMIN_ACTIONS:
            problems.append(
                f"{where}.admin: {what!r} is not an admin action{_did_you_mean(what, ADMIN_ACTIONS)}; "
                f"use one of {', '.join(ADMIN_ACTIONS)}"
            )
        else:
            required, optional = ADMIN_ACTIONS[what]
            for k in required:
                if k not in s:
                    problems.append(f"{where}.{k}: required for admin = {what!r}")
            for k in s:
                if k in ACTION_KEYS["admin"] and k not in (*required, *optional, "by", "reason"):
                    problems.append(
                        f"{where}.{k}: not used by admin = {what!r}; it takes {', '.join((*required, *optional))}"
                        " (and by, reason)"
                    )
    elif action == "fault":
        f = s["fault"]
        if _need(f"{where}.fault", f, dict, "a table", problems):
            _allowed(f"{where}.fault", f, FAULT_KEYS, problems)
            if "route" in f and (not isinstance(f["route"], str) or f["route"] not in ROUTES):
                problems.append(
                    f"{where}.fault.route: {f['route']!r} is not known{_did_you_mean(f['route'], ROUTES)}; "
                    f"use one of {', '.join(ROUTES)}"
                )
            if "route" in f and ("path" in f or "method" in f):
                problems.append(f"{where}.fault: give route, or method and path, not both")
            times = f.get("times", 1)
            if times != "always" and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
                problems.append(f'{where}.fault.times: a whole number >= 1 or "always", got {times!r}')
            if "delay" in f and (isinstance(f["delay"], bool) or not isinstance(f["delay"], int | float)):
                problems.append(f"{where}.fault.delay: seconds (a number), got {f['delay']!r}")
    elif action == "database":
        if s["database"] not in ("down", "up"):
            problems.append(f'{where}.database: "down" or "up", got {s["database"]!r}')
    elif action in ("clear_faults", "restart", "stop", "start", "disconnect") and s[action] is not True:
        problems.append(f"{where}.{action}: write {action} = true")


def _names(items: Any) -> list[str]:
    """The ``name`` of every well-formed table in a list (malformed ones are reported elsewhere)."""
    if not isinstance(items, list):
        return []
    return [i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def _check_names(guilds: list[dict[str, Any]], steps: list[dict[str, Any]], problems: list[str]) -> None:
    """Members, roles, channels and servers named anywhere exist (or are added by an earlier step).

    Every wrong name is reported, each with where it is and the closest existing name.
    """
    by_name: dict[str, dict[str, set[str]]] = {}
    for gi, g in enumerate(guilds):
        roles = {"@everyone", "Warden", *_names(g.get("roles"))}  # the sandbox adds Warden's own role
        by_name[g["name"]] = {
            "member": {"owner", *_names(g.get("members"))},  # the sandbox adds an owner
            "channel": {"general", *_names(g.get("channels"))},  # and a #general
            "role": roles,
        }
        for mi, m in enumerate(g.get("members") or []):
            held = m.get("roles") if isinstance(m, dict) else None
            for ri, role in enumerate(held if isinstance(held, list) else []):
                _check_name(
                    f"guild[{gi}].members[{mi}].roles[{ri}]", "role", role, roles, g["name"], problems
                )
    first = guilds[0]["name"]

    def check(where: str, kind: str, name: Any, guild: str) -> None:
        _check_name(where, kind, name, by_name[guild][kind], guild, problems)

    for i, s in enumerate(steps):
        w = f"step[{i + 1}]"
        guild = s.get("guild") or first
        if not isinstance(guild, str):
            continue  # reported by the step's own check
        if guild not in by_name:
            problems.append(
                f"{w}.guild: no server named {guild!r}{_did_you_mean(guild, by_name)} (servers: {', '.join(by_name)})"
            )
            continue
        admin = s.get("admin")
        if admin in ("add_member", "add_bot") and isinstance(s.get("name"), str):
            by_name[guild]["member"].add(s["name"])
        if admin == "create_role" and isinstance(s.get("name"), str):
            by_name[guild]["role"].add(s["name"])
        for key in ("as", "by"):
            check(f"{w}.{key}", "member", s.get(key), guild)
        if admin in ("add_role", "remove_role"):
            check(f"{w}.member", "member", s.get("member"), guild)
        if admin in ("add_role", "remove_role", "set_role_permissions", "delete_role"):
            check(f"{w}.role", "role", s.get("role"), guild)
        if admin == "add_member" and isinstance(s.get("roles"), list):
            for ri, role in enumerate(s["roles"]):
                check(f"{w}.roles[{ri}]", "role", role, guild)
        if admin in ("create_webhook", "set_overwrite", "remove_overwrite"):
            check(f"{w}.channel", "channel", s.get("channel"), guild)
        if admin in ("set_overwrite", "remove_overwrite") and isinstance(s.get("target"), str):
            target = s["target"]
            if target.startswith("role:"):
                check(f"{w}.target", "role", target[5:], guild)
            elif target.startswith("member:"):
                check(f"{w}.target", "member", target[7:], guild)
            elif target not in by_name[guild]["member"] | by_name[guild]["role"]:
                either = by_name[guild]["member"] | by_name[guild]["role"]
                problems.append(
                    f"{w}.target: no member or role named {target!r} in {guild}{_did_you_mean(target, either)}"
                )
        check(f"{w}.in", "channel", s.get("in"), guild)
        on = s["on"] if isinstance(s.get("on"), dict) else {}
        if isinstance(s.get("select"), list) and not on.get("channel"):
            for value in s["select"]:  # choices in a DM or a reply: members picked in a user select
                check(f"{w}.select", "member", value, guild)
        check(f"{w}.on.channel", "channel", on.get("channel"), guild)
        check(f"{w}.on.dm", "member", on.get("dm"), guild)
        exp = s.get("expect", [])
        for j, e in enumerate([exp] if isinstance(exp, dict) else exp if isinstance(exp, list) else []):
            if not isinstance(e, dict):
                continue
            for key in ("member", "dm"):
                check(f"{w}.expect[{j}].{key}", "member", e.get(key), guild)
            for key in ("channel", "has_overwrite", "lacks_overwrite"):
                check(f"{w}.expect[{j}].{key}", "channel", e.get(key), guild)
            for key in ("has_role", "lacks_role"):
                check(f"{w}.expect[{j}].{key}", "role", e.get(key), guild)


def _check_name(where: str, kind: str, name: Any, known: set[str], guild: str, problems: list[str]) -> None:
    if isinstance(name, str) and name.lstrip("#") not in known:
        listed = ", ".join(sorted(known))
        problems.append(
            f"{where}: no {kind} named {name!r} in {guild}{_did_you_mean(name, known)} ({kind}s: {listed})"
        )


def parse_scenario(
    data: Mapping[str, Any],
    source: str = "<scenario>",
    base_dir: Path | None = None,
    given: GivenPolicy | None = None,
) -> Scenario:
    """Validate already-parsed TOML; raise :class:`ScenarioError` listing every problem.

    With ``given`` (``--config``), that policy is played instead of the file's own ``policy``, and a
    file without [[guild]] tables plays in the server built from it (see ``rehearsal_server``).
    """
    problems: list[str] = []
    _allowed("scenario", data, TOP_KEYS, problems)
    problems[:] = [p.replace("scenario.", "", 1) for p in problems]
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: required: a title for the scenario (text)")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append("description: expected text")
    now = data.get("now", DEFAULT_START)
    if not isinstance(now, dt.datetime):
        problems.append("now: expected a date-time such as 2026-03-02T09:00:00Z")
        now = DEFAULT_START
    elif now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)

    guilds_raw = data.get("guild")
    guilds: list[dict[str, Any]]
    if guilds_raw is None and given is not None:
        guilds = rehearsal_server(given.policy).guilds
    elif guilds_raw is None:
        guilds = [copy.deepcopy(ACME)]
    elif not isinstance(guilds_raw, list):
        problems.append("guild: expected [[guild]] tables (an array of tables)")
        guilds = []
    else:
        for i, g in enumerate(guilds_raw):
            _check_guild(f"guild[{i}]", g, problems)
        guilds = [copy.deepcopy(g) for g in guilds_raw]

    steps = data.get("step")
    if not isinstance(steps, list) or not steps:
        problems.append("step: at least one [[step]] is required")
        steps = []
    for i, s in enumerate(steps):
        _check_step(f"step[{i + 1}]", s, problems)

    policy: Policy | None = None
    raw_policy = data.get("policy")
    note = ""
    try:
        if given is not None:
            policy = given.policy
            mine = "its own policy is not used" if raw_policy is not None else "it names none"
            where = "the server built from it" if guilds_raw is None else "the file's own [[guild]] server"
            note = f"policy: {given.source} (from --config; {mine}), played in {where}"
        elif raw_policy is None:
            policy = load_policy(EXAMPLE_CONFIG)
        elif isinstance(raw_policy, str):
            path = Path(raw_policy)
            if not path.is_absolute():
                path = (base_dir or Path.cwd()) / path
            policy = load_policy(path)
        elif isinstance(raw_policy, dict):
            policy = parse_policy(raw_policy, f"{source} [policy]")
        else:
            problems.append("policy: a path to a config.toml (text) or an inline [policy] table")
    except PolicyError as e:
        problems.extend(f"policy: {p}" for p in e.problems)

    if guilds and all(isinstance(g, dict) and isinstance(g.get("name"), str) for g in guilds):
        _check_names(guilds, [s for s in steps if isinstance(s, dict)], problems)
    if problems:
        raise ScenarioError(problems, source)
    assert policy is not None and isinstance(name, str)
    return Scenario(name, description, policy, guilds, steps, source, now, note)


def load_scenario(path: str | Path, given: GivenPolicy | None = None) -> Scenario:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(["file not found"], str(p)) from None
    except UnicodeDecodeError as e:
        raise ScenarioError([f"not UTF-8 text (byte {e.start}); save the file as UTF-8"], str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([f"not valid TOML: {e}"], str(p)) from None
    return parse_scenario(data, str(p), p.resolve().parent, given)


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass
class ScenarioResult:
    name: str
    source: str
    steps_run: int = 0
    steps_total: int = 0
    checks: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None


def _command_options(commands: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Registered chat commands as "jit request" → its option names (subcommands walked)."""
    out: dict[str, list[str]] = {}

    def walk(path: str, options: list[Mapping[str, Any]]) -> None:
        subs = [o for o in options if o.get("type") in (1, 2)]  # SUB_COMMAND, SUB_COMMAND_GROUP
        if not subs:
            out[path] = [str(o["name"]) for o in options]
        for sub in subs:
            walk(f"{path} {sub['name']}", list(sub.get("options") or []))

    for command in commands:
        if command.get("type", 1) == 1:
            walk(str(command["name"]), list(command.get("options") or []))
    return out


class StepFailed(Exception):
    """A step could not be carried out (the scenario stops there)."""


def _clip(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _short_sleep(seconds: float) -> None:
    """Warden's retry back-off in scenarios: real time is not virtual time, so waits shrink to 10 ms.

    Every attempt still happens and is counted in the transcript.
    """
    await asyncio.sleep(min(seconds, 0.01))


class _LogTap(logging.Handler):
    """Collects Warden's and discord.py's warnings during a step, to show them in the transcript."""

    NOISE = ("PyNaCl", "davey", "voice will NOT be supported", "We are being rate limited")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if any(n in msg for n in self.NOISE):
            return
        record.warden_in_transcript = True  # the CLI's stderr handler leaves it to the transcript
        extras = [
            f"{k}={getattr(record, k)}"
            for k in ("request_id", "grant_id", "attempts", "error")
            if getattr(record, k, None) is not None
        ]
        self.lines.append(
            f"{record.levelname.lower()} {record.name}: {msg}" + (f" ({' '.join(extras)})" if extras else "")
        )


class ScenarioRunner:
    """Plays one scenario against a fresh sandbox and database, writing a transcript."""

    def __init__(self, scenario: Scenario, out: Callable[[str], None] | None = None) -> None:
        self.sc = scenario
        self.out = out or (lambda line: None)
        self.result = ScenarioResult(scenario.name, scenario.source, steps_total=len(scenario.steps))
        self.world: SandboxWorld = None  # type: ignore[assignment]
        self.db_down = False
        self.last_reply: Any = None  # InteractionOutcome of the last slash/click
        self._seen: dict[int, dict[int, tuple[int, str]]] = {}
        self._tap = _LogTap()
        self._faults: list[tuple[Any, str, int]] = []  # (rule, what it does, hits already reported)

    # ---- entry point
    async def run(self) -> ScenarioResult:
        sc = self.sc
        self.out(f"▶ {sc.name}")
        if sc.description:
            for line in sc.description.strip().splitlines():
                self.out(f"  {line.rstrip()}")
        if sc.policy_note:
            self.out(f"  {sc.policy_note}")
        watched = [logging.getLogger("bot"), logging.getLogger("discord")]
        for lg in watched:
            lg.addHandler(self._tap)
        try:
            with tempfile.TemporaryDirectory(prefix="warden-scenario-") as tmp:
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'warden.db'}"
                clock = ManualClock(sc.now, frozen=True)
                try:
                    tuning = sandbox_tuning(discord_sleep=_short_sleep)
                    async with SandboxWorld(sc.policy, database_url=url, clock=clock, tuning=tuning) as world:
                        self.world = world
                        for spec in sc.guilds:
                            world.add_guild(spec)
                        await world.start_bot()
                        await self._quiesce()
                        self._snapshot()
                        self._tap.lines.clear()
                        wrong = self._check_commands()
                        if wrong:
                            self.result.error = (
                                "the scenario uses commands or options Warden does not have:\n"
                                + ("\n".join(f"    - {w}" for w in wrong))
                            )
                        for number, step in enumerate([] if wrong else sc.steps, start=1):
                            if not await self._step(number, step):
                                break
                finally:
                    with contextlib.suppress(Exception):
                        from bot.discord_endpoints import reset_discord_endpoints

                        reset_discord_endpoints()
        except (SandboxError, PolicyError, OSError) as e:
            if self.result.error is None:
                self.result.error = f"the sandbox could not run: {e}"
        finally:
            for lg in watched:
                lg.removeHandler(self._tap)
        self._summary()
        return self.result

    def _check_commands(self) -> list[str]:
        """Every slash step's command and option names against what the bot registered, all at once.

        Commands exist only once Warden has registered them, so this runs after start-up and before
        the first step: every wrong name is listed with where it is and the closest right one.
        """
        sb = self.world.sb
        problems: list[str] = []
        for i, step in enumerate(self.sc.steps, start=1):
            if "slash" not in step:
                continue
            guild = self.world.guilds[step["guild"]] if step.get("guild") else self.world.guild
            known = _command_options([*sb.commands(guild), *sb.commands()])
            command = " ".join(str(step["slash"]).lstrip("/").split())
            if command not in known:
                problems.append(
                    f"step[{i}].slash: Warden has no command /{command}{_did_you_mean(command, known)} "
                    f"(commands: {', '.join('/' + c for c in sorted(known))})"
                )
                continue
            for name in step.get("options") or {}:
                if name not in known[command]:
                    problems.append(
                        f"step[{i}].options.{name}: /{command} has no option {name!r}"
                        f"{_did_you_mean(name, known[command])} (options: {', '.join(known[command]) or 'none'})"
                    )
        return problems

    def _summary(self) -> None:
        r = self.result
        if r.passed:
            self.out(f"✓ passed ({r.steps_run} steps, {r.checks} expectations)")
            return
        if r.error:
            self.out(f"  ✗ {r.error}")
        parts = []
        if r.failures:
            parts.append(f"{len(r.failures)} of {r.checks} expectations")
        if r.error:
            skipped = r.steps_total - r.steps_run
            parts.append(
                (f"stopped at step {r.steps_run}" if r.steps_run else "stopped before step 1")
                + (f", {skipped} step{'s' if skipped != 1 else ''} not run" if skipped else "")
            )
        self.out(f"✗ failed: {'; '.join(parts)}")

    # ---- one step
    async def _step(self, number: int, step: dict[str, Any]) -> bool:
        self.result.steps_run = number
        guild = self.world.guilds[step["guild"]] if step.get("guild") else self.world.guild
        action = next((a for a in ACTIONS if a in step), None)
        if step.get("note"):
            self.out(f"  — {step['note']}")
        try:
            if action is None:
                self.out(f"  {number}. check")
            else:
                await getattr(self, f"_do_{action}")(number, step, guild)
            await self._quiesce()
            self._report_changes()
        except Exception as e:  # any failure ends the scenario readably; cleanup follows
            with contextlib.suppress(Exception):
                self._report_changes()
            msg = str(e) or type(e).__name__
            if isinstance(e, LookupError) and not isinstance(e, SandboxError):
                msg = f"not found: {msg}"
            elif not isinstance(e, SandboxError | StepFailed | TimeoutError | ValueError):
                msg = f"{type(e).__name__}: {msg}"
            self.result.error = f"step {number} ({self._describe(step)}) failed: {msg}"
            return False
        if "expect_reply" in step:
            await self._check(self._expect_reply_check(step["expect_reply"]))
        exp = step.get("expect", [])
        for expectation in [exp] if isinstance(exp, dict) else exp:
            await self._check(self._expectation(expectation, guild))
        return True

    def _describe(self, step: dict[str, Any]) -> str:
        action = next((a for a in ACTIONS if a in step), None)
        if action == "slash":
            return f"{step['as']}: /{step['slash']}"
        if action == "click":
            return f"{step['as']} clicks {step['click']}"
        if action == "select":
            return f"{step['as']} picks {', '.join(step['select'])}"
        if action is None:
            return "check"
        return f"{action} {step[action]}" if not isinstance(step[action], bool) else action

    # ---- actions
    def _member(self, guild: SGuild, name: str) -> SMember:
        m = guild.get_member(name)
        if m is None:
            raise StepFailed(
                f"no member named {name!r} in {guild.name} (members: {', '.join(x.name for x in guild.members)})"
            )
        return m

    def _require_bot(self) -> None:
        if self.world.bot is None:
            raise StepFailed("Warden is stopped; add a step with start = true first")

    async def _do_slash(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self._require_bot()
        who = self._member(guild, step["as"])
        options = dict(step.get("options", {}))
        shown = " ".join(f"{k}={v}" for k, v in options.items())
        self.out(f"  {number}. {who.name}: /{step['slash']}" + (f" {shown}" if shown else ""))
        kw: dict[str, Any] = {}
        if step.get("in"):
            kw["in_channel"] = guild.channel(step["in"])
        out = await self.world.sb.slash(guild, who, step["slash"], options, **kw)
        self.last_reply = out
        self._show_reply(who, out)

    def _find_message(self, guild: SGuild, on: dict[str, Any]) -> SMessage:
        sb = self.world.sb
        contains = on.get("contains", "")
        if on.get("reply"):
            msg = self.last_reply.message if self.last_reply is not None else None
            if msg is None:
                raise StepFailed("the previous step's reply has no message to click on")
            return msg
        if "channel" in on:
            msgs = sb.messages(self._channel(guild, on["channel"]))
            place = f"#{on['channel']}"
        else:
            msgs = sb.dms(self._member(guild, on["dm"]))
            place = f"{on['dm']}'s DMs"
        for m in reversed(msgs):
            if self._contains(m.text, contains):
                return m
        last = "; ".join(repr(_clip(self._human(m.text), 60)) for m in msgs[-3:]) or "none"
        raise StepFailed(f"no message containing {contains!r} in {place}; last messages: {last}")

    async def _do_click(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self._require_bot()
        who = self._member(guild, step["as"])
        msg = self._find_message(guild, step["on"])
        title = _clip(self._human(msg.text).split("\n")[0] if msg.text else "", 60)
        forged = " (forged)" if step.get("forged") else ""
        self.out(f'  {number}. {who.name} clicks {step["click"]}{forged} on "{title}"')
        sb = self.world.sb
        if step.get("forged") or step.get("custom_id"):
            out = await sb.click(
                who, msg, step["click"], custom_id=step.get("custom_id"), forged=bool(step.get("forged"))
            )
        else:
            out = await sb.click(who, msg, step["click"])
        self.last_reply = out
        if "modal" in step:
            if out.modal is None:
                self._show_reply(who, out)
                raise StepFailed(
                    f"the click did not open a modal; the bot answered: {_clip(self._human(out.text))!r}"
                )
            fields = ", ".join(f"{k}={v!r}" for k, v in step["modal"].items())
            self.out(
                f'     ↳ (only {who.name}) a form "{out.modal.get("title", "")}" opens; {who.name} fills {fields}'
            )
            out = await sb.submit_modal(who, out, dict(step["modal"]))
            self.last_reply = out
        self._show_reply(who, out)

    async def _do_select(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        """Pick in a select menu: members by name for a user select, option values for a string select."""
        self._require_bot()
        who = self._member(guild, step["as"])
        msg = self._find_message(guild, step["on"])
        self.out(f"  {number}. {who.name} picks {', '.join(step['select'])}")
        comps = [c for c in walk_components(msg.components) if c.get("type") in (3, 5, 6, 7, 8)]
        if not comps:
            raise StepFailed("that message has no select menu")
        values: list[Any] = (
            list(step["select"])
            if comps[0]["type"] == 3
            else [self._target(guild, v) for v in step["select"]]
        )
        out = await self.world.sb.select(who, msg, values, custom_id=comps[0]["custom_id"])
        self.last_reply = out
        self._show_reply(who, out)

    async def _do_advance(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        delta = parse_duration(step["advance"])
        when = self.world.clock.now() + delta
        self.out(f"  {number}. ⏱ {format_duration(delta)} pass (now {when:%Y-%m-%d %H:%M} UTC)")
        if self.world.bot is None:
            self.world.clock.advance(delta)
            return
        await self.world.advance(delta)

    async def _do_admin(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        what = step["admin"]
        admin = self.world.sb.admin
        args = {k: v for k, v in step.items() if k in ACTION_KEYS["admin"]}
        shown = " ".join(f"{k}={v}" for k, v in args.items() if k not in ("by", "reason"))
        actor = self._member(guild, step["by"]) if step.get("by") else None
        self.out(f"  {number}. admin{' ' + actor.name if actor else ''}: {what} {shown}")
        common: dict[str, Any] = {"actor": actor, "reason": step.get("reason")}
        if what in ("add_role", "remove_role"):
            await getattr(admin, what)(
                guild, self._member(guild, step["member"]), guild.role(step["role"]), **common
            )
        elif what == "set_role_permissions":
            await admin.set_role_permissions(guild, guild.role(step["role"]), step["permissions"], **common)
        elif what == "create_role":
            await admin.create_role(guild, step["name"], step.get("permissions"), **common)
        elif what == "delete_role":
            await admin.delete_role(guild, guild.role(step["role"]), **common)
        elif what == "add_bot":
            await admin.add_bot(guild, step["name"], step.get("permissions"), **common)
        elif what == "create_webhook":
            await admin.create_webhook(guild, self._channel(guild, step["channel"]), step["name"], **common)
        elif what == "add_integration":
            kind = step.get("type", "twitch")
            await admin.add_integration(
                guild,
                step["name"],
                type=kind,
                scopes=step.get("scopes", []),
                application=kind == "discord",
                **common,
            )
        elif what in ("set_overwrite", "remove_overwrite"):
            target = self._target(guild, step["target"])
            channel = self._channel(guild, step["channel"])
            if what == "set_overwrite":
                await admin.set_overwrite(
                    guild, channel, target, step.get("allow"), step.get("deny"), **common
                )
            else:
                await admin.remove_overwrite(guild, channel, target, **common)
        elif what == "add_member":
            await admin.add_member(guild, step["name"], roles=step.get("roles", []))

    def _target(self, guild: SGuild, name: str) -> Any:
        if name.startswith("role:"):
            return guild.role(name[5:])
        if name.startswith("member:"):
            return self._member(guild, name[7:])
        found = guild.get_member(name) or guild.get_role(name)
        if found is None:
            raise StepFailed(f"no member or role named {name!r}")
        return found

    def _channel(self, guild: SGuild, name: str) -> SChannel:
        c = guild.get_channel(name.lstrip("#"))
        if c is None:
            raise StepFailed(f"no channel named {name!r} in {guild.name}")
        return c

    async def _do_fault(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        f = step["fault"]
        method, path = ROUTES[f["route"]] if "route" in f else (f.get("method"), f.get("path"))
        times = None if f.get("times", 1) == "always" else f.get("times", 1)
        where = f"{method or 'any method'} {path or 'any route'}"
        count = "until cleared" if times is None else f"{times} time{'s' if times != 1 else ''}"
        faults = self.world.sb.faults
        if "delay" in f:
            rule = faults.delay(method=method, path=path, seconds=float(f["delay"]), times=times)
            self._faults.append((rule, f"delayed {where} by {f['delay']}s", 0))
            self.out(f"  {number}. ⚡ Discord answers {where} {f['delay']}s late ({count})")
            return
        status = int(f.get("status", 500))
        code = f.get("code", 50013 if status == 403 else 0)
        message = f.get("message", "Missing Permissions" if status == 403 else None)
        rule = faults.fail(
            method=method,
            path=path,
            status=status,
            times=times,
            retry_after=float(f.get("retry_after", 0.05)),
            code=code,
            message=message,
        )
        self._faults.append((rule, f"answered {where} with {status}", 0))
        self.out(f"  {number}. ⚡ Discord answers {where} with {status} ({count})")

    async def _do_clear_faults(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self._report_faults()
        self.world.sb.faults.clear()
        self._faults.clear()
        self.out(f"  {number}. ⚡ Discord behaves again (faults cleared)")

    async def _do_database(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self._require_bot()
        if step["database"] == "down":
            await self.world.database_down()
            self.db_down = True
            self.out(f"  {number}. ⛁ the database stops answering")
        else:
            await self.world.database_up()
            self.db_down = False
            self.out(f"  {number}. ⛁ the database is back")

    async def _do_restart(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self.out(f"  {number}. ↻ Warden restarts (same database)")
        await self.world.restart_bot()
        self.db_down = False

    async def _do_stop(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self.out(f"  {number}. ■ Warden stops")
        await self.world.stop_bot()

    async def _do_start(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self.out(f"  {number}. ▶ Warden starts (and catches up on what fell due)")
        if self.world.bot is not None:
            raise StepFailed("Warden is already running")
        await self.world.start_bot()
        self.db_down = False

    async def _do_disconnect(self, number: int, step: dict[str, Any], guild: SGuild) -> None:
        self._require_bot()
        self.out(f"  {number}. ⚡ the gateway connection drops (Warden resumes)")
        await self.world.sb.disconnect_gateway()
        await asyncio.sleep(0.2)

    # ---- transcript helpers
    def _human(self, text: str) -> str:
        """Mentions and timestamps as a person reads them."""
        sb = self.world.sb

        def user(m: re.Match[str]) -> str:
            u = sb.users.get(int(m.group(1)))
            return f"@{u.name}" if u else m.group(0)

        def role(m: re.Match[str]) -> str:
            rid = int(m.group(1))
            for g in self.world.guilds.values():
                r = g.get_role(rid)
                if r is not None:
                    return f"@{r.name}"
            return m.group(0)

        def chan(m: re.Match[str]) -> str:
            c = sb.channels.get(int(m.group(1)))
            return f"#{c.name}" if c else m.group(0)

        def stamp(m: re.Match[str]) -> str:
            when = dt.datetime.fromtimestamp(int(m.group(1)), dt.UTC)
            if m.group(2) == "R":
                delta = when - self.world.clock.now()
                sign = "in " if delta.total_seconds() >= 0 else ""
                ago = "" if sign else " ago"
                return f"{sign}{format_duration(abs(delta)).replace(' ', '')}{ago}"
            return f"{when:%Y-%m-%d %H:%M} UTC"

        text = re.sub(r"<@!?(\d+)>", user, text)
        text = re.sub(r"<@&(\d+)>", role, text)
        text = re.sub(r"<#(\d+)>", chan, text)
        return re.sub(r"<t:(\d+)(?::([tTdDfFR]))?>", stamp, text)

    def _contains(self, text: str, needle: str) -> bool:
        return needle in text or needle in self._human(text)

    def _show_reply(self, who: SMember, out: Any) -> None:
        text = out.all_text
        if not text:
            return
        # Whole, line by line: a reply such as the /warden doctor report is read in full.
        lines = [ln.rstrip() for ln in self._human(text).split("\n") if ln.strip()]
        if out.ephemeral:
            head = f"     ↳ (only {who.name}) "
        elif (
            out.message is not None
            and out.record.source_message is not None
            and out.message.id == out.record.source_message.id
        ):
            return  # the click updated the card itself: shown with the channel's changes
        else:
            head = "     ↳ "
        self.out(head + lines[0])
        for line in lines[1:]:
            self.out("       " + line)

    def _place(self, cid: int) -> str:
        c = self.world.sb.channels.get(cid)
        if c is None:
            return str(cid)
        if c.recipient is not None:
            return f"✉ DM to {c.recipient.name}"
        return f"#{c.name}"

    def _snapshot(self) -> None:
        self._seen = {
            cid: {m.id: (m.revision, m.text) for m in msgs if not m.deleted and not m.ephemeral}
            for cid, msgs in self.world.sb.channel_messages.items()
        }

    def _report_changes(self) -> None:
        sb = self.world.sb
        before = self._seen
        governance = self._governance_ids()
        for cid, msgs in sb.channel_messages.items():
            old = before.get(cid, {})
            for m in msgs:
                if m.deleted or m.ephemeral:
                    continue
                text = self._human(m.text)
                lines = [ln for ln in text.split("\n") if ln.strip()]
                head = _clip(lines[0] if lines else "", 70)
                place = self._place(cid)
                if m.id not in old:
                    if cid in governance:
                        self.out(f"     {place}: narrative {self._narrative_line(m)}")
                    elif m.components and place.startswith("#"):
                        self.out(f'     {place}: new card "{head}"')
                    else:
                        body = _clip(" ".join(lines), 110)
                        self.out(f'     {place}: "{body}"')
                elif old[m.id][0] != m.revision:
                    was = set(self._human(old[m.id][1]).split("\n"))
                    new = [ln for ln in lines[1:] if ln not in was]
                    self.out(
                        f'     {place}: "{head}" updated' + (f": {_clip(' / '.join(new), 80)}" if new else "")
                    )
        self._report_faults()
        for line in self._tap.lines:
            self.out(f"     ⚠ Warden logged {_clip(line, 120)}")
        self._tap.lines.clear()
        self._snapshot()

    def _report_faults(self) -> None:
        for i, (rule, what, seen) in enumerate(self._faults):
            if rule.hits > seen:
                n = rule.hits - seen
                self.out(f"     ⚡ Discord {what} ({n} call{'s' if n != 1 else ''}; {rule.hits} so far)")
                self._faults[i] = (rule, what, rule.hits)

    def _narrative_line(self, m: SMessage) -> str:
        """ "Access granted" [scope.deploy] reason…, from the narrative embed's Rule and Reason fields."""
        if not m.embeds:
            return repr(_clip(self._human(m.text), 90))
        embed = m.embeds[0]
        fields = {f.get("name"): str(f.get("value", "")) for f in embed.get("fields") or ()}
        rule = fields.get("Rule", "").strip("`")
        reason = self._human(fields.get("Reason", ""))
        line = f'"{embed.get("title", "")}"' + (f" [{rule}]" if rule and rule != "none" else "")
        return line + (f" {_clip(reason, 90)}" if reason and reason != "none" else "")

    def _governance_ids(self) -> set[int]:
        ids = set()
        for g in self.world.guilds.values():
            ch = self._governance(g)
            if ch is not None:
                ids.add(ch.id)
        return ids

    def _governance(self, guild: SGuild) -> SChannel | None:
        gp = self.sc.policy.guild_policy(guild.id, guild.name)
        if gp is None:
            return None
        ref = gp.governance_channel
        if isinstance(ref, int):
            return guild.get_channel(ref)
        # As Warden resolves it: the name without a leading #, compared without case.
        name = ref.removeprefix("#").casefold()
        return next((c for c in guild.channels if c.name.casefold() == name), None)

    def _fingerprint(self) -> tuple[Any, ...]:
        sb = self.world.sb
        log = sb.request_log
        msgs = tuple((cid, len(ms), sum(m.revision for m in ms)) for cid, ms in sb.channel_messages.items())
        return (len(log), id(log[-1]) if log else 0, msgs)

    async def _quiesce(self, quiet_for: int = 3, limit: float = 3.0) -> None:
        """Let the bot finish what the step set off (DMs after replies, audit reactions, narratives)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        last: Any = None
        stable = 0
        while loop.time() < deadline:
            await self._settle()
            fp = self._fingerprint()
            if fp == last:
                stable += 1
                if stable >= quiet_for:
                    return
            else:
                stable, last = 0, fp
            await asyncio.sleep(0.02)

    async def _settle(self) -> None:
        if self.world.bot is not None and not self.db_down:
            await self.world.settle()

    # ---- expectations
    async def _check(self, check: tuple[str, Callable[[], Any]]) -> None:
        """Run one check; positive ones get a moment to come true (DMs and narratives follow replies)."""
        title, probe = check
        self.result.checks += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EVENTUALLY_SECONDS
        while True:
            try:
                res = probe()
                if asyncio.iscoroutine(res):
                    res = await res
                ok, why = res
            except Exception as e:  # a check that cannot be made has failed
                ok, why = False, f"{title.lstrip('!')}: could not be checked: {type(e).__name__}: {e}"
            if ok or loop.time() >= deadline or title.startswith("!"):
                break
            await asyncio.sleep(0.05)
            await self._settle()
        title = title.lstrip("!")
        if ok:
            self.out(f"     ✓ {title}")
        else:
            self.out(f"     ✗ {why}")
            self.result.failures.append(why)

    def _expect_reply_check(self, needle: str) -> tuple[str, Callable[[], Any]]:
        def probe() -> tuple[bool, str]:
            text = self.last_reply.all_text if self.last_reply is not None else ""
            return self._contains(text, needle), (
                f"expected the reply to contain {needle!r}; the reply was: {_clip(self._human(text), 200)!r}"
                if text
                else f"expected the reply to contain {needle!r}; there was no reply"
            )

        return f"reply says {needle!r}", probe

    def _expectation(self, e: dict[str, Any], guild: SGuild) -> tuple[str, Callable[[], Any]]:
        sb = self.world.sb
        if "member" in e:
            who = e["member"]
            for key, want in (("has_role", True), ("lacks_role", False)):
                if key in e:
                    role = e[key]

                    def probe(role: str = role, want: bool = want) -> tuple[bool, str]:
                        m = self._member(guild, who)
                        has = ", ".join(m.role_names()) or "no roles"
                        verb = "to have" if want else "not to have"
                        return m.has_role(
                            role
                        ) == want, f"expected {who} {verb} role {role}; {who} has: {has}"

                    return (
                        ("" if want else "!") + f"{who} {'has' if want else 'does not have'} role {role}"
                    ), probe
            key = "has_overwrite" if "has_overwrite" in e else "lacks_overwrite"
            want = key == "has_overwrite"
            cname = e[key]

            def probe_ow() -> tuple[bool, str]:
                m = self._member(guild, who)
                ch = self._channel(guild, cname)
                ow = ch.overwrite_for(m.id)
                from sandbox.models import permission_names

                state = (
                    f"allow {permission_names(ow.allow)} deny {permission_names(ow.deny)}" if ow else "none"
                )
                verb = "to have" if want else "not to have"
                return (
                    ow is not None
                ) == want, f"expected {who} {verb} an overwrite on #{cname}; overwrite: {state}"

            return (
                ("" if want else "!") + f"{who} {'has' if want else 'has no'} overwrite on #{cname}"
            ), probe_ow
        if "channel" in e or "dm" in e:
            if "channel" in e:
                place = f"#{e['channel']}"

                def msgs() -> list[SMessage]:
                    return sb.messages(self._channel(guild, e["channel"]))
            else:
                place = f"{e['dm']}'s DMs"

                def msgs() -> list[SMessage]:
                    return sb.dms(self._member(guild, e["dm"]))

            def recent(ms: list[SMessage]) -> str:
                if not ms:
                    return "there are none"
                return f"last {min(3, len(ms))}: " + "; ".join(
                    repr(_clip(self._human(m.text), 90)) for m in ms[-3:]
                )

            if "message_count" in e:
                n = e["message_count"]

                def probe_n() -> tuple[bool, str]:
                    ms = msgs()
                    return len(
                        ms
                    ) == n, f"expected {n} messages in {place}; there are {len(ms)} ({recent(ms)})"

                return f"!{place} has {n} message{'s' if n != 1 else ''}", probe_n
            if "no_message_contains" in e:
                needle = e["no_message_contains"]

                def probe_no() -> tuple[bool, str]:
                    hits = [m for m in msgs() if self._contains(m.text, needle)]
                    return (
                        not hits,
                        f"expected no message containing {needle!r} in {place}; found {_clip(self._human(hits[-1].text), 120)!r}"
                        if hits
                        else "",
                    )

                return f"!no message in {place} says {needle!r}", probe_no
            needles = e["message_contains"]
            needles = [needles] if isinstance(needles, str) else list(needles)

            def probe_msg() -> tuple[bool, str]:
                ms = msgs()
                ok = any(all(self._contains(m.text, n) for n in needles) for m in ms)
                shown = " and ".join(repr(n) for n in needles)
                return ok, f"expected a message containing {shown} in {place}; {recent(ms)}"

            return f"{place}: a message says {' + '.join(repr(n) for n in needles)}", probe_msg
        if "narrative" in e or "no_narrative" in e:
            positive = "narrative" in e
            needle = e["narrative" if positive else "no_narrative"]

            async def probe_nar() -> tuple[bool, str]:
                await self._settle()
                ch = self._governance(guild)
                ms = sb.messages(ch) if ch is not None else []
                hits = [m for m in ms if self._narrative_matches(m, needle)]
                titles = (
                    ", ".join(repr(_clip(self._human(m.text).split("\n")[0], 40)) for m in ms[-6:]) or "none"
                )
                if positive:
                    return bool(
                        hits
                    ), f"expected a governance narrative mentioning {needle!r}; narratives so far: {titles}"
                return (
                    not hits,
                    f"expected no governance narrative mentioning {needle!r}; found {_clip(self._human(hits[-1].text), 120)!r}"
                    if hits
                    else "",
                )

            return (
                f"a narrative mentions {needle!r}" if positive else f"!no narrative mentions {needle!r}"
            ), probe_nar
        if "ledger" in e:

            async def probe_ledger() -> tuple[bool, str]:
                ok, problems = await self.world.ledger_verifies()
                return ok, f"expected the ledger to verify; problems: {'; '.join(problems[:3])}"

            return "!the ledger verifies (hash chain and signatures)", probe_ledger
        if "reply_contains" in e:
            return self._expect_reply_check(e["reply_contains"])
        if "reply_lacks" in e:
            needle = e["reply_lacks"]

            def probe_lacks() -> tuple[bool, str]:
                text = self.last_reply.all_text if self.last_reply is not None else ""
                return not self._contains(
                    text, needle
                ), f"expected the reply not to contain {needle!r}; it was: {_clip(self._human(text), 200)!r}"

            return f"!reply does not say {needle!r}", probe_lacks

        def probe_conf() -> tuple[bool, str]:
            try:
                sb.conformance.assert_ok()
            except AssertionError as err:
                return (
                    False,
                    f"expected every request the bot made to conform to Discord's API; {_clip(str(err), 200)}",
                )
            return True, ""

        return "!every request Warden made matched Discord's API", probe_conf

    def _narrative_matches(self, m: SMessage, needle: str) -> bool:
        if self._contains(m.text, needle):
            return True
        colour_titles = " ".join(str(e.get("title", "")) for e in m.embeds).lower()
        return needle.lower() in colour_titles


# ----------------------------------------------------------------------------- files and the CLI


async def run_scenario(scenario: Scenario, out: Callable[[str], None] | None = None) -> ScenarioResult:
    return await ScenarioRunner(scenario, out).run()


async def run_scenario_file(
    path: str | Path, out: Callable[[str], None] | None = None, given: GivenPolicy | None = None
) -> ScenarioResult:
    """Load and run one file; a file that does not validate is a failed result naming its problems."""
    try:
        scenario = load_scenario(path, given)
    except ScenarioError as e:
        if out:
            out(f"▶ {path}")
            out(f"✗ {e}")
        return ScenarioResult(str(path), str(path), error=str(e))
    return await run_scenario(scenario, out)


def run_all(
    scenarios: Iterable[Scenario | str | Path],
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    given: GivenPolicy | None = None,
) -> int:
    """Run scenarios one after another, printing transcripts; exit status 0 only if all passed.

    ``given`` (``--config``) replaces the policy of every scenario file.
    """
    stream = stream or sys.stdout
    results: list[ScenarioResult] = []

    async def go() -> None:
        for item in scenarios:
            buffer: list[str] = []
            out = buffer.append if quiet else (lambda line: print(line, file=stream, flush=True))
            if isinstance(item, Scenario):
                res = await run_scenario(item, out)
            else:
                res = await run_scenario_file(item, out, given)
            if quiet:
                for ln in buffer:
                    if ln.startswith(("▶", "✓")) or "✗" in ln:
                        print(ln, file=stream, flush=True)
            else:
                print("", file=stream, flush=True)
            results.append(res)

    asyncio.run(go())
    if len(results) > 1:
        passed = sum(r.passed for r in results)
        print(f"{passed} of {len(results)} scenarios passed", file=stream, flush=True)
    return 0 if results and all(r.passed for r in results) else 1
