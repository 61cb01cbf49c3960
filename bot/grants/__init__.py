"""Grant lifecycle: apply, revoke, expire, remind, and re-apply after a crash."""
