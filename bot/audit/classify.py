"""An audit event + what is true in the guild + the rules → a :class:`Verdict`.

Order of questions, each answered once:

1. Is it Warden's own change (its user id)? → nothing to decide; Warden recorded it already.
   A reason that *claims* to be Warden's from another actor proves nothing (anyone can
   write a reason) and is shown in the proof.
2. Could the entry be read at all? → otherwise ``unclassified`` (an alert; never an exception).
3. Is every access the change gives sanctioned by an active grant? → allowed
   (``sanctioned-grant``): standing roles and overlapping grants are never reverted.
4. The first rule (policy rules in file order, then the defaults) whose every condition
   holds decides. A condition whose fact cannot be established does not hold.
5. No rule matched → allowed (``no-rule-matched``), a ledger entry without a narrative.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.audit.actions import PlanInput, Quarantine
from bot.audit.decision import RULE_NO_MATCH, RULE_SANCTIONED, RULE_UNCLASSIFIED, AuditOutcome
from bot.audit.events import AuditEvent
from bot.audit.names import DANGEROUS_PERMISSIONS
from bot.audit.ports import GrantLedger, GuildFacts, SanctionKey
from bot.policy import GuildDirectory, GuildPolicy, Policy, Rule, RuleCondition, Scope, permissions_from_names

#: How Warden's audit-log reasons begin (see the grant service): "Warden grant #12 (...)".
WARDEN_REASON = re.compile(r"^Warden (grant|revert|quarantine|restore)\b")
_DANGEROUS_BITS = permissions_from_names(DANGEROUS_PERMISSIONS).value

#: Sanctioning grants read ahead for a batch of events: (guild, member, kind, target) → grant id,
#: for every access asked about (None: no grant sanctions it).
Sanctions = Mapping[tuple[int, int, str, int], int | None]


def sanction_keys(event: AuditEvent) -> list[SanctionKey]:
    """The accesses whose sanctioning grant :meth:`Classifier.establish` asks about for ``event``."""
    target = event.target_id
    if event.action == "member_role_update" and target is not None:
        return [(target, "role", role) for role in event.roles_added]
    if (
        event.action.startswith("overwrite_")
        and event.action != "overwrite_delete"
        and event.overwrite_target_id is not None
        and event.overwrite_target_type != "role"
        and event.channel_id is not None
    ):
        return [(event.overwrite_target_id, "channel", event.channel_id)]
    return []


@dataclass(frozen=True)
class Facts:
    """What the classifier established about one event; ``None`` = could not be established."""

    actor_is_admin: bool | None = None
    target_is_bot: bool | None = None
    target_name: str | None = None
    jit_roles: frozenset[int] = frozenset()  # roles in the event that a role scope grants
    unsanctioned_jit_roles: frozenset[int] = frozenset()
    #: The role scopes that grant those roles (an ``approve`` adopts the change as a request for one).
    jit_scopes: tuple[str, ...] = ()
    sanctioned_roles: Mapping[int, int] = field(default_factory=dict)  # role id → grant id
    sanctioned_overwrite: int | None = None  # grant id
    exceeds_ceiling: bool | None = None
    channel_is_private: bool | None = None
    overwrite_target_broad: bool | None = None
    bot_dangerous: bool | None = None
    mfa_lowered: bool | None = None
    verification_lowered: bool | None = None
    quarantine: Quarantine | None = None
    reason_claims_warden: bool = False

    def proof(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.actor_is_admin is not None:
            out["actor_is_admin"] = self.actor_is_admin
        if self.unsanctioned_jit_roles:
            out["jit_role_ids"] = sorted(self.unsanctioned_jit_roles)
        if self.jit_scopes:
            out["scopes"] = list(self.jit_scopes)
        if self.sanctioned_roles:
            out["sanctioned_by_grants"] = sorted(set(self.sanctioned_roles.values()))
        if self.sanctioned_overwrite is not None:
            out["sanctioned_by_grants"] = [self.sanctioned_overwrite]
        for key in ("exceeds_ceiling", "channel_is_private", "overwrite_target_broad", "bot_dangerous"):
            if getattr(self, key):
                out[key] = True
        if self.mfa_lowered:
            out["mfa_lowered"] = True
        if self.reason_claims_warden:
            out["reason_claims_warden"] = "the reason names Warden but another account made the change"
        return out


@dataclass(frozen=True)
class Verdict:
    outcome: AuditOutcome
    rule_id: str
    reason: str
    controls: tuple[str, ...] = ()
    facts: Facts = field(default_factory=Facts)
    rule: Rule | None = None
    own_action: bool = False

    def plan_input(self, event: AuditEvent, rule: Rule | None = None) -> PlanInput:
        f = self.facts
        roles: frozenset[int]
        if rule is not None and rule.when.role_is_jit:
            roles = f.unsanctioned_jit_roles
        else:
            roles = frozenset(r for r in event.roles_added if r not in f.sanctioned_roles)
        return PlanInput(
            roles=roles,
            sanctioned_roles=frozenset(f.sanctioned_roles),
            sanctioned_overwrite=f.sanctioned_overwrite is not None,
            quarantine=f.quarantine if event.action == "bot_add" else None,
        )


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Classifier:
    def __init__(
        self,
        policy: Policy,
        rules: Iterable[Rule],
        facts: GuildFacts,
        grants: GrantLedger,
        *,
        warden_user_id: int | None = None,
        guilds: GuildDirectory | None = None,
    ) -> None:
        self.policy = policy
        self.rules = tuple(rules)
        self.facts = facts
        self.grants = grants
        self.warden_user_id = warden_user_id
        self.guilds = guilds

    # ---- guild context ----------------------------------------------------------------------

    def guild_policy(self, guild_id: int) -> GuildPolicy | None:
        """The guild's table: by id or pin through the bot's directory (a look-alike server with a
        configured name gets none); without one (unit tests), the policy's first-sight match."""
        if self.guilds is not None:
            return self.guilds.get(guild_id)
        return self.policy.guild_policy(guild_id, self.facts.name_of(guild_id, guild_id) or "")

    def role_scopes(self, gid: int, gp: GuildPolicy | None) -> dict[int, list[Scope]]:
        if gp is None:
            return {}
        out: dict[int, list[Scope]] = {}
        for scope in self.policy.scopes_for(gp):
            if scope.kind == "role" and scope.role is not None:
                rid = self.facts.role_id(gid, scope.role)
                if rid is not None:
                    out.setdefault(rid, []).append(scope)
        return out

    def _is_admin(self, gid: int, gp: GuildPolicy | None, user_id: int | None) -> bool | None:
        return policy_admin(self.facts, gid, gp, user_id)

    # ---- facts ------------------------------------------------------------------------------

    async def sanctions_for(
        self, events: Iterable[AuditEvent]
    ) -> dict[tuple[int, int, str, int], int | None]:
        """Read the sanctioning grants a batch of events asks about: one query per guild, not one
        per event (a raid of hand-given roles is thousands of entries)."""
        by_guild: dict[int, set[SanctionKey]] = {}
        for event in events:
            if event.guild_id is not None and event.classified:
                by_guild.setdefault(event.guild_id, set()).update(sanction_keys(event))
        out: dict[tuple[int, int, str, int], int | None] = {}
        for gid, keys in by_guild.items():
            found = await self.grants.sanctioning_grants(gid, keys)
            out.update({(gid, *key): found.get(key) for key in keys})
        return out

    async def _sanctioning(self, gid: int, key: SanctionKey, known: Sanctions | None) -> int | None:
        full = (gid, *key)
        if known is not None and full in known:
            return known[full]
        return await self.grants.sanctioning_grant(gid, *key)

    async def establish(self, event: AuditEvent, sanctions: Sanctions | None = None) -> Facts:
        gid = event.guild_id
        assert gid is not None
        gp = self.guild_policy(gid)
        facts = self.facts
        jit = self.role_scopes(gid, gp)
        values: dict[str, Any] = {
            "actor_is_admin": self._is_admin(gid, gp, event.actor_id),
            "reason_claims_warden": bool(event.reason and WARDEN_REASON.match(event.reason)),
        }
        target = event.target_id
        if target is not None:
            values["target_name"] = facts.name_of(gid, target)
        action = event.action

        if action == "member_role_update" and target is not None:
            values["target_is_bot"] = facts.is_bot(gid, target)
            sanctioned: dict[int, int] = {}
            for role in event.roles_added:
                grant = await self._sanctioning(gid, (target, "role", role), sanctions)
                if grant is not None:
                    sanctioned[role] = grant
            values["sanctioned_roles"] = sanctioned
            values["jit_roles"] = frozenset(r for r in (*event.roles_added, *event.roles_removed) if r in jit)
            values["unsanctioned_jit_roles"] = frozenset(
                r for r in event.roles_added if r in jit and r not in sanctioned
            )
            if values["target_is_bot"]:
                added_bits = 0
                known = True
                for role in event.roles_added:
                    bits = facts.role_permissions(gid, role)
                    known = known and bits is not None
                    added_bits |= bits or 0
                values["bot_dangerous"] = (
                    bool(added_bits & _DANGEROUS_BITS) if (known or added_bits) else None
                )
        elif action in ("role_update", "role_delete", "role_create") and target is not None:
            values["jit_roles"] = frozenset({target}) if target in jit else frozenset()
            values["unsanctioned_jit_roles"] = values["jit_roles"]
            if action == "role_update" and target in jit:
                after = event.permissions_after or 0
                gained = after & ~(event.permissions_before or 0)
                over = False
                for scope in jit[target]:
                    if scope.permission_ceiling is not None:
                        ceiling = permissions_from_names(scope.permission_ceiling).value
                        over = over or bool(gained & ~ceiling)
                values["exceeds_ceiling"] = over
            elif action == "role_update":
                values["exceeds_ceiling"] = False
        elif action.startswith("overwrite_") and event.overwrite_target_id is not None:
            ow = event.overwrite_target_id
            if event.overwrite_target_type == "role":
                broad = {gid} | {
                    rid
                    for ref in (gp.broad_roles if gp else ())
                    if (rid := facts.role_id(gid, ref)) is not None
                }
                values["overwrite_target_broad"] = ow in broad
            else:
                values["overwrite_target_broad"] = False
                if event.channel_id is not None and action != "overwrite_delete":
                    values["sanctioned_overwrite"] = await self._sanctioning(
                        gid, (ow, "channel", event.channel_id), sanctions
                    )
        elif action == "bot_add" and target is not None:
            perms = facts.member_permissions(gid, target)
            values["bot_dangerous"] = None if perms is None else bool(perms & _DANGEROUS_BITS)
            managed = facts.managed_role_id(gid, target)
            values["quarantine"] = Quarantine(
                role_ids=tuple(sorted(facts.member_role_ids(gid, target) or ())),
                managed_role_id=managed,
                managed_role_permissions=(facts.role_permissions(gid, managed) or 0) if managed else 0,
            )
        elif action == "guild_update":
            for key, name in (("mfa_level", "mfa_lowered"), ("verification_level", "verification_lowered")):
                change = event.change(key)
                if change is None:
                    values[name] = False
                    continue
                old, new = _as_int(change.before), _as_int(change.after)
                values[name] = None if old is None or new is None else new < old
        values["jit_scopes"] = tuple(
            sorted({s.id for r in values.get("unsanctioned_jit_roles", ()) for s in jit.get(r, [])})
        )
        if event.channel_id is not None and (action.startswith(("webhook_", "overwrite_"))):
            values["channel_is_private"] = facts.channel_is_private(gid, event.channel_id)
        return Facts(**values)

    # ---- matching ---------------------------------------------------------------------------

    def matches(self, when: RuleCondition, event: AuditEvent, f: Facts) -> bool:
        if event.action not in when.event:
            return False
        for key, wanted in when.conditions().items():
            if key == "target":
                names = {str(t).casefold() for t in wanted if isinstance(t, str)}
                ids = {t for t in wanted if isinstance(t, int)}
                hit = event.target_id in ids or (f.target_name or "\0").casefold() in names
                if not hit:
                    return False
            elif key == "gains_any":
                if not (event.permissions_gained & wanted):
                    return False
            elif key == "gains_dangerous":
                if bool(event.permissions_gained & DANGEROUS_PERMISSIONS) != wanted:
                    return False
            elif key == "role_is_jit":
                have = bool(f.unsanctioned_jit_roles if event.action == "member_role_update" else f.jit_roles)
                if have != wanted:
                    return False
            else:
                value = getattr(f, key)
                if value is None or value != wanted:
                    return False
        return True

    # ---- the decision -----------------------------------------------------------------------

    async def classify(self, event: AuditEvent, sanctions: Sanctions | None = None) -> Verdict:
        """``sanctions``: sanctioning grants read ahead with :meth:`sanctions_for` (else read here)."""
        if self.warden_user_id is not None and event.actor_id == self.warden_user_id:
            return Verdict(AuditOutcome.ALLOW, "warden", "Warden's own change.", own_action=True)
        if event.action == "unclassified" or event.guild_id is None:
            # A policy rule may name "unclassified" (e.g. to silence a known new action type).
            for rule in self.rules:
                if self.matches(rule.when, event, Facts()):
                    return self._by_rule(rule, event, Facts())
            return Verdict(
                AuditOutcome.ALERT,
                RULE_UNCLASSIFIED,
                f"Warden could not read this audit-log entry ({event.problem or 'unknown shape'}), "
                "so it was not judged; check it by hand.",
                controls=("SOC2:CC7.2", "ISO27001:A.8.16"),
            )
        f = await self.establish(event, sanctions)
        if (
            event.action == "member_role_update"
            and event.roles_added
            and not event.roles_removed
            and all(r in f.sanctioned_roles for r in event.roles_added)
        ):
            return Verdict(
                AuditOutcome.ALLOW,
                RULE_SANCTIONED,
                "Every role added is given by an active Warden grant.",
                facts=f,
            )
        if f.sanctioned_overwrite is not None:
            return Verdict(
                AuditOutcome.ALLOW,
                RULE_SANCTIONED,
                "The overwrite is an active Warden channel grant.",
                facts=f,
            )
        for rule in self.rules:
            if self.matches(rule.when, event, f):
                return self._by_rule(rule, event, f)
        return Verdict(
            AuditOutcome.ALLOW,
            RULE_NO_MATCH,
            f"No rule covers this {event.action.replace('_', ' ')}, so it is allowed.",
            facts=f,
        )

    def _by_rule(self, rule: Rule, event: AuditEvent, f: Facts) -> Verdict:
        return Verdict(
            AuditOutcome(rule.outcome),
            rule.id,
            rule.description or f"Rule {rule.id} matched this {event.action.replace('_', ' ')}.",
            controls=rule.controls,
            facts=f,
            rule=rule,
        )


def policy_admin(facts: GuildFacts, gid: int, gp: GuildPolicy | None, user_id: int | None) -> bool | None:
    """Is the user one of the policy's admins (``admins`` in ``[guild.X]``)? The server owner always
    is; with no admin list it cannot be established (None), so rules about non-admins never fire on a
    guess, and nobody but the owner may act as an admin."""
    if user_id is None or gp is None:
        return None
    if user_id == facts.owner_id(gid):
        return True
    if not gp.admins:
        return None
    roles: frozenset[int] | None = None
    for admin in gp.admins:
        if admin.kind in ("user", "any") and admin.ref == user_id:
            return True
        if admin.kind in ("role", "any"):
            rid = facts.role_id(gid, admin.ref)
            if rid is None:
                continue
            if roles is None:
                roles = facts.member_role_ids(gid, user_id) or frozenset()
            if rid in roles:
                return True
    return False
