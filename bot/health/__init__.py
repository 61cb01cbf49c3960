"""Operability: the health/metrics endpoint (:mod:`.server`), Warden's metrics (:mod:`.metrics`,
:mod:`.facts`) and the start-up report (:mod:`.startup`). Import the submodule you need."""
