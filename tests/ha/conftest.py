"""Home Assistant test setup."""

from __future__ import annotations

import pytest
from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION

# Import ours before the harness's testing config can shadow the custom_components package.
import custom_components.deepgram_flux  # noqa: F401


def needs_home_assistant(version: str, why: str) -> pytest.MarkDecorator:
    """Tests of behaviour that older supported releases do not have: they run on the newest harness."""
    return pytest.mark.skipif(
        AwesomeVersion(HA_VERSION) < AwesomeVersion(version),
        reason=f"needs Home Assistant >= {version} (this is {HA_VERSION}): {why}",
    )


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


@pytest.fixture
def entry_model() -> str:
    """The model of the test's entry; a test runs on both backends with
    `@pytest.mark.parametrize("entry_model", BACKENDS)` (nova-3 alone hears every language, English too)."""
    return "flux-general-en"


BACKENDS = ["flux-general-en", "nova-3"]


def stt_entity_id(model: str, nova: bool = True) -> str:
    """The STT entity of an entry with this model: its device is named after what the entry serves."""
    from homeassistant.util import slugify

    from custom_components.deepgram_flux import entry_name

    return f"stt.{slugify(entry_name({'model': model, 'nova': nova}))}"


@pytest.fixture
def flux_entry_data(fake_flux, entry_model):  # type: ignore[no-untyped-def]
    """A config entry pointed at the fake Flux (a custom endpoint), made before Nova-3 for other languages
    was a setting (so it has the default: on)."""
    from tests.conftest import API_KEY

    return {"api_key": API_KEY, "model": entry_model, "endpoint": "custom", "custom_url": fake_flux.url}


@pytest.fixture
async def flux_entry(hass, ha_core, flux_entry_data):  # type: ignore[no-untyped-def]
    """Our integration, set up against the fake Flux."""
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.deepgram_flux import entry_name
    from custom_components.deepgram_flux.config_flow import unique_id

    entry = MockConfigEntry(
        domain="deepgram_flux", data=flux_entry_data, unique_id=unique_id(flux_entry_data),
        title=entry_name(flux_entry_data),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry
