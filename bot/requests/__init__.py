"""Requests: create, extend, cancel, break-glass, /jit mine, and the pending-request sweeps."""
