"""The default rule set, shipped in the package (``bot/data/audit_rules.toml``) and documented in
docs/rules.md.

How it combines with the policy: the policy's ``[[rule]]``s are evaluated first,
in file order, then these defaults in their file's order; the first rule that matches
decides. A policy rule with the same id as a default *replaces* that default (so
``id = "jit-role-by-hand"`` with ``outcome = "approve"`` turns reverting a
hand-given JIT role into adopting it as a pending request), and any other policy
rule that matches first wins over the defaults (write an ``allow`` rule to carve
out an exception). An event no rule matches is allowed and recorded in the ledger
as ``no-rule-matched``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from importlib import resources

from bot.policy import Policy, Rule


def load_default_rules() -> tuple[Rule, ...]:
    """The rules of ``bot/data/audit_rules.toml``, written as a policy's ``[[rule]]``s are."""
    text = resources.files("bot.data").joinpath("audit_rules.toml").read_text(encoding="utf-8")
    return tuple(Rule.model_validate(r) for r in tomllib.loads(text)["rule"])


DEFAULT_RULES: tuple[Rule, ...] = load_default_rules()


def effective_rules(
    policy_rules: Iterable[Rule], defaults: Iterable[Rule] = DEFAULT_RULES
) -> tuple[Rule, ...]:
    """Policy rules in file order, then the defaults the policy did not replace (by id)."""
    own = tuple(policy_rules)
    replaced = {r.id for r in own}
    return own + tuple(r for r in defaults if r.id not in replaced)


def active_rules_summary(policy: Policy) -> str:
    """What ``check-config`` and ``warden run`` say about the audit rules that will run."""
    rules = effective_rules(policy.rules)
    own = len(policy.rules)
    parts = []
    if own:
        parts.append(f"{own} from the policy: {', '.join(r.id for r in policy.rules)}")
    defaults = len(rules) - own
    parts.append(f"{defaults} default{'s' if defaults != 1 else ''} (docs/rules.md)")
    n = len(rules)
    return f"{n} audit rule{'s' if n != 1 else ''} active ({'; '.join(parts)})"
