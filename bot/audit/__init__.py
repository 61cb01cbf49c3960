"""The audit room: every guild audit-log entry normalised, decided by the policy's rules, acted on.

Modules (import them directly; this package re-exports nothing so that
``bot.policy`` can use :mod:`bot.audit.names` without an import cycle):

- :mod:`bot.audit.names` — Warden's event names and Discord's action types.
- :mod:`bot.audit.events` — a raw audit-log entry → :class:`~bot.audit.events.AuditEvent`.
- :mod:`bot.audit.classify` — an event + guild facts + the rules → a decision.
- :mod:`bot.audit.defaults` — the default rule set.
- :mod:`bot.audit.actions` — the Discord mutations that revert a change, as data.
- :mod:`bot.audit.bursts` — many events by one actor summarised in one narrative.
- :mod:`bot.audit.cursor` — catch-up bookkeeping: per-guild cursor and dedupe.
- :mod:`bot.audit.listener` — :class:`~bot.audit.listener.AuditListener` ties them together.
"""
