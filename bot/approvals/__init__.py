"""Approvals: votes and quorum, the deny modal, break-glass review; their buttons and cards."""
