"""Acting as people: slash commands, autocomplete, button clicks, selects and modal submits.

Each action builds the interaction Discord would send, dispatches INTERACTION_CREATE
and waits (with a timeout) for the bot's answer, returned as an InteractionOutcome. With
``wait=True`` it also waits for ``after_interaction`` (what the bot does after answering,
when a harness says how to wait for it), so a test reads cards and DMs right after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError, SandboxTimeout
from sandbox.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionOutcome,
    InteractionRecord,
)
from sandbox.models import (
    SChannel,
    SGuild,
    SMember,
    SMessage,
    SRole,
    SUser,
    channel_payload,
    member_payload,
    message_payload,
    role_payload,
    user_payload,
    walk_components,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Awaitable, Callable

    from sandbox.gateway import Gateway
    from sandbox.models import SnowflakeGen

SUBCOMMAND, SUBCOMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
SELECT_TYPES = {3, 5, 6, 7, 8}
MAX_INTERACTIONS = 20_000


class ActingMixin:
    """Methods of :class:`SandboxDiscord` that act as Discord users."""

    if TYPE_CHECKING:
        # Provided by SandboxDiscord, the one class that mixes this in; declared so mypy checks both sides.
        application_id: int
        bot_user: SUser
        users: dict[int, SUser]
        guilds: dict[int, SGuild]
        channels: dict[int, SChannel]
        global_commands: list[dict]
        guild_commands: dict[int, list[dict]]
        interactions: dict[int, InteractionRecord]
        after_interaction: Callable[[InteractionRecord], Awaitable[None]] | None
        gateway: Gateway
        snowflake: SnowflakeGen

        def _now(self) -> dt.datetime: ...
        def dm_channel(self, who: SMember | SUser) -> SChannel: ...

    # ------------------------------------------------------------------ public
    async def slash(
        self,
        guild: SGuild | None,
        member: SMember | SUser | str,
        command: str,
        /,
        options: dict[str, Any] | None = None,
        *,
        in_channel: SChannel | str | None = None,
        timeout: float = 5.0,
        wait: bool = True,
        locale: str = "en-US",
        **kw: Any,
    ) -> InteractionOutcome:
        """Run ``/command`` ("jit request" = command + subcommand; "a b c" = group + subcommand).

        Option values: str/int/float/bool/SMember/SUser/SRole/SChannel (or a name for entity options).
        ``options`` (a dict) is merged with keyword options — use it for option names that clash
        with this method's parameters. ``wait=False``: return as soon as the bot acknowledged, even if
        it deferred.
        """
        values = {**kw, **(options or {})}
        user, mem, channel = self._context(guild, member, in_channel)
        cmd, path, leaf = self._find_command(guild, command)
        resolved: dict[str, dict] = {}
        leaf_options = []
        for name, value in values.items():
            spec = self._option_spec(command, leaf, name)
            leaf_options.append(self._option_value(guild, channel, command, spec, value, resolved))
        given = {o["name"] for o in leaf_options}
        missing = [o["name"] for o in leaf if o.get("required") and o["name"] not in given]
        if missing:
            raise SandboxError(f"/{command}: missing required option(s) {', '.join(missing)}")
        data = self._command_data(cmd, path, leaf_options, resolved, guild)
        rec = self._new_interaction(
            APPLICATION_COMMAND, user, mem, guild, channel, data, name=command, locale=locale
        )
        return await self._await_outcome(rec, timeout, wait, f"/{command}")

    async def autocomplete(
        self,
        guild: SGuild | None,
        member: SMember | SUser | str,
        command: str,
        /,
        focused: str,
        options: dict[str, Any] | None = None,
        *,
        in_channel: SChannel | str | None = None,
        timeout: float = 5.0,
        locale: str = "en-US",
        **kw: Any,
    ) -> list[dict]:
        """What the bot suggests for option ``focused`` given what is typed (``focused``'s value, default "")."""
        values = {**kw, **(options or {})}
        user, mem, channel = self._context(guild, member, in_channel)
        cmd, path, leaf = self._find_command(guild, command)
        spec = self._option_spec(command, leaf, focused)
        if not spec.get("autocomplete"):
            raise SandboxError(f"/{command}: option {focused!r} has no autocomplete")
        resolved: dict[str, dict] = {}
        leaf_options = []
        for name, value in values.items():
            if name == focused:
                continue
            leaf_options.append(
                self._option_value(
                    guild, channel, command, self._option_spec(command, leaf, name), value, resolved
                )
            )
        typed = values.get(focused, "")
        leaf_options.append({"name": focused, "type": spec["type"], "value": str(typed), "focused": True})
        data = self._command_data(cmd, path, leaf_options, resolved, guild)
        rec = self._new_interaction(
            AUTOCOMPLETE, user, mem, guild, channel, data, name=command, locale=locale
        )
        out = await self._await_outcome(rec, timeout, False, f"autocomplete of /{command} {focused}")
        return out.choices

    async def click(
        self,
        member: SMember | SUser | str,
        message: SMessage | InteractionOutcome,
        label: str | None = None,
        *,
        custom_id: str | None = None,
        timeout: float = 5.0,
        wait: bool = True,
        locale: str = "en-US",
        forged: bool = False,
    ) -> InteractionOutcome:
        """Click the button labelled ``label`` (or with ``custom_id``) on ``message`` (guild channel or DM).

        ``forged=True`` acts as a modified client or a stale card: it sends ``custom_id`` as
        given, even if the message has no such button or the button is disabled.
        """
        msg = self._as_message(message)
        if forged:
            if custom_id is None:
                raise SandboxError("a forged click needs the custom_id to send")
            button: dict[str, Any] = {
                "type": 2,
                "style": 1,
                "custom_id": custom_id,
                "label": label or "forged",
            }
            # The interaction carries the message as the client believes it to be.
            msg = dataclasses.replace(msg, components=[{"type": 1, "components": [button]}])
        else:
            button = self._find_component(msg, label, custom_id, {2})
        if button.get("style") == 5 or not button.get("custom_id"):
            raise SandboxError(f"button {button.get('label')!r} is a link button: nothing to click")
        data = {"custom_id": button["custom_id"], "component_type": 2}
        user, mem, guild, channel = self._message_context(msg, member)
        rec = self._new_interaction(
            MESSAGE_COMPONENT,
            user,
            mem,
            guild,
            channel,
            data,
            name=button["custom_id"],
            source_message=msg,
            locale=locale,
        )
        return await self._await_outcome(rec, timeout, wait, f"click on {button.get('label') or custom_id!r}")

    async def select(
        self,
        member: SMember | SUser | str,
        message: SMessage | InteractionOutcome,
        values: list[Any],
        *,
        custom_id: str | None = None,
        placeholder: str | None = None,
        timeout: float = 5.0,
        wait: bool = True,
    ) -> InteractionOutcome:
        """Choose ``values`` in a select menu (string select: option values; entity selects: objects)."""
        msg = self._as_message(message)
        comp = self._find_component(msg, placeholder, custom_id, SELECT_TYPES, key="placeholder")
        user, mem, guild, channel = self._message_context(msg, member)
        resolved: dict[str, dict] = {}
        out_values = []
        for v in values:
            if comp["type"] == 3:
                allowed = [o["value"] for o in comp.get("options", [])]
                if str(v) not in allowed:
                    raise SandboxError(
                        f"select {comp['custom_id']!r} has no option {v!r} (options: {allowed})"
                    )
                out_values.append(str(v))
            else:
                opt = self._option_value(
                    guild,
                    channel,
                    "select",
                    {"name": "v", "type": {5: USER, 6: ROLE, 7: MENTIONABLE, 8: CHANNEL}[comp["type"]]},
                    v,
                    resolved,
                )
                out_values.append(opt["value"])
        data: dict[str, Any] = {
            "custom_id": comp["custom_id"],
            "component_type": comp["type"],
            "values": out_values,
        }
        if resolved:
            data["resolved"] = resolved
        rec = self._new_interaction(
            MESSAGE_COMPONENT, user, mem, guild, channel, data, name=comp["custom_id"], source_message=msg
        )
        return await self._await_outcome(rec, timeout, wait, f"select {comp['custom_id']!r}")

    async def submit_modal(
        self,
        member: SMember | SUser | str,
        outcome: InteractionOutcome,
        values: dict[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        wait: bool = True,
        forged_custom_id: str | None = None,
        **kw: Any,
    ) -> InteractionOutcome:
        """Fill and submit the modal the bot opened; fields by text-input custom_id or label (case-insensitive).

        ``forged_custom_id``: a modified client sends the form back under another custom id.
        """
        modal = outcome.modal
        if modal is None:
            raise SandboxError(f"the bot did not answer with a modal (response type {outcome.response_type})")
        given = {**kw, **(values or {})}
        lowered = {str(k).lower(): v for k, v in given.items()}
        used: set[str] = set()

        def field(comp: dict, label: str | None) -> dict:
            cid = comp.get("custom_id")
            keys = [k for k in (cid, label, comp.get("label")) if k]
            value = None
            for k in keys:
                if k.lower() in lowered:
                    value = lowered[k.lower()]
                    used.add(k.lower())
                    break
            name = label or comp.get("label") or cid
            if comp["type"] == 4:
                text = "" if value is None else str(value)
                if comp.get("required", True) and not text:
                    raise SandboxError(f"modal {modal.get('title')!r}: field {name!r} is required")
                if text and comp.get("min_length") and len(text) < comp["min_length"]:
                    raise SandboxError(f"modal field {name!r}: at least {comp['min_length']} characters")
                if comp.get("max_length") and len(text) > comp["max_length"]:
                    raise SandboxError(f"modal field {name!r}: at most {comp['max_length']} characters")
                out = {"type": 4, "custom_id": cid, "value": text}
            elif comp["type"] == 3:
                vals = [] if value is None else (value if isinstance(value, list) else [value])
                out = {"type": 3, "custom_id": cid, "values": [str(v) for v in vals]}
            else:
                out = {"type": comp["type"], "custom_id": cid, "values": [] if value is None else list(value)}
            if comp.get("id") is not None:
                out["id"] = comp["id"]
            return out

        known: set[str] = set()
        for top in modal.get("components") or []:
            inner_list = top.get("components", []) if top.get("type") == 1 else [top.get("component") or {}]
            for c in inner_list:
                known |= {str(k).lower() for k in (c.get("custom_id"), c.get("label"), top.get("label")) if k}
        unknown = [k for k in lowered if k not in known]
        if unknown:
            raise SandboxError(
                f"modal {modal.get('title')!r} has no field(s) {unknown} (fields: {sorted(known)})"
            )
        components = []
        for top in modal.get("components") or []:
            if top.get("type") == 1:
                components.append(
                    {
                        "type": 1,
                        "components": [
                            field(c, None) for c in top.get("components", []) if c.get("custom_id")
                        ],
                    }
                )
            elif top.get("type") == 18:
                inner = field(top["component"], top.get("label"))
                row: dict[str, Any] = {"type": 18, "component": inner}
                if top.get("id") is not None:
                    row["id"] = top["id"]
                components.append(row)
            elif top.get("type") == 10 and top.get("id") is not None:
                components.append({"type": 10, "id": top["id"]})
        prev = outcome.record
        user, mem = self._who(prev.guild, member)
        custom_id = modal["custom_id"] if forged_custom_id is None else forged_custom_id
        data = {"custom_id": custom_id, "components": components}
        rec = self._new_interaction(
            MODAL_SUBMIT,
            user,
            mem,
            prev.guild,
            prev.channel,
            data,
            name=modal["custom_id"],
            source_message=prev.source_message,
        )
        return await self._await_outcome(rec, timeout, wait, f"modal {modal.get('title')!r}")

    # ------------------------------------------------------------------ helpers
    def _who(self, guild: SGuild | None, member: SMember | SUser | str) -> tuple[SUser, SMember | None]:
        if isinstance(member, str):
            if guild is not None:
                member = guild.member(member)
            else:
                found = next((u for u in self.users.values() if u.name == member), None)
                if found is None:
                    raise SandboxError(f"no user named {member!r}")
                member = found
        if guild is None:
            return (member.user if isinstance(member, SMember) else member), None
        if isinstance(member, SUser):
            member = guild.member(member.id)
        if guild.get_member(member.id) is None:
            raise SandboxError(f"{member.name!r} is not a member of {guild.name!r}")
        return member.user, member

    def _context(
        self,
        guild: SGuild | None,
        member: SMember | SUser | str,
        in_channel: SChannel | str | None,
    ) -> tuple[SUser, SMember | None, SChannel]:
        user, mem = self._who(guild, member)
        if guild is None:
            return user, None, self.dm_channel(user)
        if in_channel is None:
            texts = guild.text_channels()
            if not texts:
                raise SandboxError(f"guild {guild.name!r} has no text channel to run a command in")
            channel = texts[0]
        else:
            channel = guild.channel(in_channel) if isinstance(in_channel, str) else in_channel
        return user, mem, channel

    def _message_context(
        self, msg: SMessage, member: SMember | SUser | str
    ) -> tuple[SUser, SMember | None, SGuild | None, SChannel]:
        channel = self.channels.get(msg.channel_id)
        if channel is None:
            raise SandboxError(f"message {msg.id} is in an unknown channel")
        guild = self.guilds.get(channel.guild_id) if channel.guild_id else None
        user, mem = self._who(guild, member)
        if channel.type == 1 and channel.recipient is not None and channel.recipient.id != user.id:
            raise SandboxError(f"{user.name!r} cannot click in {channel.recipient.name!r}'s DMs")
        if msg.deleted:
            raise SandboxError("the message was deleted")
        return user, mem, guild, channel

    @staticmethod
    def _as_message(message: SMessage | InteractionOutcome) -> SMessage:
        if isinstance(message, InteractionOutcome):
            msg = message.message
            if msg is None:
                raise SandboxError("that interaction outcome has no message")
            return msg
        return message

    @staticmethod
    def _find_component(
        msg: SMessage, label: str | None, custom_id: str | None, types: set[int], key: str = "label"
    ) -> dict:
        comps = [c for c in walk_components(msg.components) if c.get("type") in types]
        found = None
        if custom_id is not None:
            found = next((c for c in comps if c.get("custom_id") == custom_id), None)
        elif label is not None:
            found = next((c for c in comps if c.get(key) == label), None) or next(
                (c for c in comps if str(c.get(key, "")).lower() == label.lower()), None
            )
        elif len(comps) == 1:
            found = comps[0]
        if found is None:
            listing = [(c.get(key), c.get("custom_id")) for c in comps]
            raise SandboxError(f"no component {label or custom_id!r} on message {msg.id}; it has: {listing}")
        if found.get("disabled"):
            raise SandboxError(f"component {label or custom_id!r} is disabled")
        return found

    def _find_command(self, guild: SGuild | None, command: str) -> tuple[dict, list[dict], list[dict]]:
        words = command.strip().lstrip("/").split()
        if not words:
            raise SandboxError("empty command")
        pool = (self.guild_commands.get(guild.id, []) if guild else []) + self.global_commands
        cmd = next((c for c in pool if c["name"] == words[0] and c.get("type", 1) == 1), None)
        if cmd is None:
            names = sorted({c["name"] for c in pool})
            raise SandboxError(
                f"no command named {words[0]!r} is registered by the bot (registered: {names})"
            )
        if guild is None:
            contexts = cmd.get("contexts")
            if (
                cmd.get("guild_id")
                or cmd.get("dm_permission") is False
                or (contexts is not None and 1 not in contexts)
            ):
                raise SandboxError(f"/{words[0]} cannot be used in DMs")
        path: list[dict] = []
        opts = cmd.get("options") or []
        for w in words[1:]:
            sub = next(
                (o for o in opts if o["name"] == w and o["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP)), None
            )
            if sub is None:
                subs = [o["name"] for o in opts if o["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP)]
                raise SandboxError(
                    f"/{' '.join(words[: 1 + len(path)])} has no subcommand {w!r} (has: {subs})"
                )
            path.append(sub)
            opts = sub.get("options") or []
        if any(o["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP) for o in opts):
            subs = [o["name"] for o in opts]
            raise SandboxError(f"/{command} needs a subcommand: {subs}")
        return cmd, path, opts

    @staticmethod
    def _option_spec(command: str, leaf: list[dict], name: str) -> dict:
        spec = next((o for o in leaf if o["name"] == name), None)
        if spec is None:
            raise SandboxError(f"/{command} has no option {name!r} (options: {[o['name'] for o in leaf]})")
        return spec

    def _option_value(
        self,
        guild: SGuild | None,
        channel: SChannel,
        command: str,
        spec: dict,
        value: Any,
        resolved: dict[str, dict],
    ) -> dict:
        t = spec["type"]
        name = spec["name"]
        out: dict[str, Any] = {"name": name, "type": t}
        if t == STRING:
            v: Any = str(value)
        elif t == INTEGER:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise SandboxError(f"/{command} {name}: expected an integer, got {value!r}")
            v = int(value)
        elif t == NUMBER:
            v = float(value)
        elif t == BOOLEAN:
            if not isinstance(value, bool):
                raise SandboxError(f"/{command} {name}: expected a bool, got {value!r}")
            v = value
        elif t in (USER, ROLE, CHANNEL, MENTIONABLE):
            v = self._resolve_entity(guild, command, name, t, value, resolved, channel)
        else:
            raise SandboxError(f"/{command} {name}: option type {t} is not supported by the sandbox")
        if spec.get("choices"):
            choices = spec["choices"]
            match = next((c for c in choices if c["value"] == v), None) or next(
                (c for c in choices if c["name"] == value), None
            )
            if match is None:
                raise SandboxError(
                    f"/{command} {name}: {value!r} is not one of {[c['value'] for c in choices]}"
                )
            v = match["value"]
        if t in (INTEGER, NUMBER):
            if spec.get("min_value") is not None and v < spec["min_value"]:
                raise SandboxError(f"/{command} {name}: {v} < min {spec['min_value']}")
            if spec.get("max_value") is not None and v > spec["max_value"]:
                raise SandboxError(f"/{command} {name}: {v} > max {spec['max_value']}")
        if t == STRING:
            if spec.get("min_length") and len(v) < spec["min_length"]:
                raise SandboxError(f"/{command} {name}: shorter than {spec['min_length']}")
            if spec.get("max_length") and len(v) > spec["max_length"]:
                raise SandboxError(f"/{command} {name}: longer than {spec['max_length']}")
        out["value"] = v
        return out

    def _resolve_entity(
        self,
        guild: SGuild | None,
        command: str,
        name: str,
        t: int,
        value: Any,
        resolved: dict[str, dict],
        channel: SChannel,
    ) -> str:
        if isinstance(value, str) and guild is not None:
            value = (
                (guild.get_member(value) if t in (USER, MENTIONABLE) else None)
                or (guild.get_role(value) if t in (ROLE, MENTIONABLE) else None)
                or (guild.get_channel(value) if t == CHANNEL else None)
                or value
            )
        if isinstance(value, SUser) and guild is not None and guild.get_member(value.id) is not None:
            value = guild.member(value.id)
        if isinstance(value, SMember | SUser) and t in (USER, MENTIONABLE):
            user = value.user if isinstance(value, SMember) else value
            resolved.setdefault("users", {})[str(user.id)] = user_payload(user)
            if isinstance(value, SMember) and guild is not None:
                data = member_payload(value, with_user=False)
                data["permissions"] = str(guild.channel_permissions(value, channel))
                resolved.setdefault("members", {})[str(user.id)] = data
            return str(user.id)
        if isinstance(value, SRole) and t in (ROLE, MENTIONABLE):
            resolved.setdefault("roles", {})[str(value.id)] = role_payload(value)
            return str(value.id)
        if isinstance(value, SChannel) and t == CHANNEL:
            data = channel_payload(value)
            bot = guild.get_member(self.bot_user.id) if guild else None
            if guild is not None and bot is not None:
                data["permissions"] = str(guild.channel_permissions(bot, value))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        raise SandboxError(f"/{command} {name}: cannot use {value!r} for an option of type {t}")

    @staticmethod
    def _command_data(
        cmd: dict, path: list[dict], leaf_options: list[dict], resolved: dict, guild: SGuild | None
    ) -> dict:
        options: list[dict] = leaf_options
        for sub in reversed(path):
            options = [{"name": sub["name"], "type": sub["type"], "options": options}]
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if options:
            data["options"] = options
        if resolved:
            data["resolved"] = resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return data

    def _new_interaction(
        self,
        type_: int,
        user: SUser,
        member: SMember | None,
        guild: SGuild | None,
        channel: SChannel,
        data: dict,
        *,
        name: str,
        source_message: SMessage | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        if not self.gateway.sessions:
            raise SandboxError("no bot is connected to the sandbox gateway (start the client first)")
        iid = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        chan = channel_payload(channel)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": type_,
            "data": data,
            "channel_id": str(channel.id),
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild is not None:
            assert member is not None
            bot = guild.member(self.bot_user.id)
            perms = guild.channel_permissions(member, channel)
            chan["permissions"] = str(perms)
            m = member_payload(member)
            m["permissions"] = str(perms)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=m,
                app_permissions=str(guild.channel_permissions(bot, channel)),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            payload.update(
                user=user_payload(user),
                app_permissions=str(0),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        payload["channel"] = chan
        if source_message is not None:
            payload["message"] = message_payload(source_message)
        rec = InteractionRecord(
            id=iid,
            token=token,
            type=type_,
            user=user,
            member=member,
            guild=guild,
            channel=channel,
            created_loop=asyncio.get_running_loop().time(),
            created_at=self._now(),
            name=name,
            source_message=source_message,
            payload=payload,
        )
        self.interactions[iid] = rec
        if len(self.interactions) > MAX_INTERACTIONS:
            for old in list(self.interactions)[: MAX_INTERACTIONS // 4]:
                del self.interactions[old]
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        return rec

    async def _await_outcome(
        self, rec: InteractionRecord, timeout: float, wait: bool, what: str
    ) -> InteractionOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(rec.responded.wait(), timeout)
        except TimeoutError:
            raise SandboxTimeout(
                f"the bot did not answer {what} within {timeout}s (interaction {rec.id}); "
                "is the handler registered and did it respond?"
            ) from None
        if wait and rec.deferred and not rec.settled.is_set():
            try:
                await asyncio.wait_for(rec.settled.wait(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                raise SandboxTimeout(
                    f"the bot deferred {what} but sent no follow-up or edit within {timeout}s"
                ) from None
        if wait and self.after_interaction is not None:
            # The answer is recorded (answered_loop); what the bot does after it (cards, DMs) is
            # done before the action returns, so what a test reads next is there.
            try:
                await asyncio.wait_for(self.after_interaction(rec), max(0.01, deadline - loop.time()))
            except TimeoutError:
                raise SandboxTimeout(
                    f"the bot answered {what} but its follow-up work (cards, DMs) did not finish "
                    f"within {timeout}s"
                ) from None
        return InteractionOutcome(rec)
