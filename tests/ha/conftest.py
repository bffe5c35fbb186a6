"""Home Assistant test setup."""

from __future__ import annotations

import pytest

# Import ours before the harness's testing config can shadow the custom_components package.
import custom_components.deepgram_flux  # noqa: F401


@pytest.fixture(autouse=True)
def _custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/ in every test here."""


@pytest.fixture
async def ha_core(hass):  # type: ignore[no-untyped-def]
    """The `homeassistant` integration: exposed entities, which conversation and assist need."""
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(hass, "homeassistant", {})
    await hass.async_block_till_done()
    return hass
