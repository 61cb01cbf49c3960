"""A ledger filled by the real bot: decisions made through the sandbox, then reported on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import Populated, populated_world


@pytest.fixture
async def populated(db_url: str, tmp_path: Path) -> AsyncIterator[Populated]:
    async with populated_world(db_url, tmp_path) as p:
        yield p
