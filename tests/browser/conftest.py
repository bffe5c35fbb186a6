"""A real Home Assistant for the tests that drive it as a process (no browser needed for these)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.harness import HomeAssistant, onboarded_home_assistant
from tests.conftest import API_KEY


@pytest.fixture
async def home_assistant(tmp_path: Path) -> AsyncIterator[HomeAssistant]:
    """A started, onboarded Home Assistant; afterwards its log holds no key, no traceback and no error of ours."""
    async with onboarded_home_assistant(tmp_path / "config") as ha:
        yield ha
    log = ha.log_text()
    assert API_KEY not in log and "custom_components/deepgram_flux/" not in log  # no key, no traceback of ours
    assert not [line for line in log.splitlines() if "ERROR" in line and "deepgram_flux" in line]
