"""Group commit: concurrent callers share one run; each gets its own answer or the batch's error."""

from __future__ import annotations

import asyncio

import pytest

from bot.services.batching import Batched


async def test_concurrent_callers_share_a_run_and_each_gets_its_own_value() -> None:
    runs: list[list[int]] = []

    async def run(keys: list[int]) -> dict[int, str]:
        runs.append(keys)
        await asyncio.sleep(0.01)  # while this batch is written, the next one gathers
        return {k: f"v{k}" for k in keys if k != 3}

    batched: Batched[int, str | None] = Batched(run, None)
    first = await asyncio.gather(*(batched(k) for k in range(5)))
    assert first == ["v0", "v1", "v2", None, "v4"] and runs == [[0, 1, 2, 3, 4]]
    late = asyncio.gather(*(batched(k) for k in (7, 7, 8)))
    assert await late == ["v7", "v7", "v8"] and runs[-1] == [7, 8]


async def test_a_failed_run_fails_its_callers_only() -> None:
    async def run(keys: list[int]) -> dict[int, int]:
        if 13 in keys:
            raise ConnectionError("database down")
        return {k: k for k in keys}

    batched: Batched[int, int] = Batched(run, 0)
    with pytest.raises(ConnectionError):
        await asyncio.gather(batched(1), batched(13))
    assert await batched(2) == 2  # the next batch runs as usual
