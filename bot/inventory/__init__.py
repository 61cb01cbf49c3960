"""The inventory of non-human identities: bots, webhooks, integrations and tokens Warden issued.

- :mod:`bot.inventory.permissions` — effective permissions exactly as Discord computes them.
- :mod:`bot.inventory.snapshot` — plain data describing a guild, and the adapter from discord.py.
- :mod:`bot.inventory.risk` — the drift-aware risk score with its reasons.
- :mod:`bot.inventory.service` — :class:`InventoryService` (snapshot, owners, risk-sorted pages).
- :mod:`bot.inventory.export` — JSON and CSV files; :mod:`bot.inventory.cli` — ``warden inventory``.
"""
