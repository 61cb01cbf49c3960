"""Short-lived access tokens for systems outside Discord (scopes of kind ``token``).

- :mod:`bot.tokens.service` — :class:`TokenService`: issue, verify (introspection), revoke,
  expire, revoke with a grant, revoke the dormant.
- :mod:`bot.tokens.cli` — ``warden token verify`` for a gateway or a script.

See docs/tokens.md for the design and the recipe for checking a token.
"""
