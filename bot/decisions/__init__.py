"""Decisions: the signed ledger entry for every outcome, and its narrative in the governance channel."""
