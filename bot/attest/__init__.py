"""Attestation campaigns: owners vouch for what they own, in their DMs (docs/attestations.md)."""
