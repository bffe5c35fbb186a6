"""The local fallback through the Home Assistant entity: a real second STT entity (Home Assistant's own wyoming
integration, talking to a separate Wyoming server process) hears the command when Flux cannot answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import pytest
from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.deepgram_flux.diagnostics import async_get_config_entry_diagnostics
from custom_components.deepgram_flux.fallback import FALLBACK_TIMEOUT
from tests.fake_flux import FakeFlux, Script
from tests.fallback_peer import Peer, wyoming_peer
from tests.faults import FAULTS, Fault, heal
from tests.ha.conftest import BACKENDS
from tests.ha.test_config_flow import options_form
from tests.ha.test_faults import one_command
from tests.ha.test_stt_entity import ENTITY_ID
from tests.helpers import fixture_text, load_wav, silence
from wyoming_flux.turn.fallback import FALLBACK_GRACE

KITCHEN = "turn_on_the_kitchen_light"
TIMER = "set_a_timer"
BOUND = FALLBACK_TIMEOUT + FALLBACK_GRACE  # seconds from the end of the audio to the answer


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    async with wyoming_peer() as running:
        yield running


async def _wyoming_entity(hass: HomeAssistant, peer: Peer) -> str:
    address = urlparse(peer.uri)
    entry = MockConfigEntry(domain="wyoming", data={"host": address.hostname, "port": address.port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    (registered,) = [e for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
                     if e.domain == "stt"]
    return registered.entity_id


@pytest.fixture
async def with_fallback(hass: HomeAssistant, flux_entry: MockConfigEntry, peer: Peer) -> MockConfigEntry:
    fallback = await _wyoming_entity(hass, peer)
    hass.config_entries.async_update_entry(flux_entry, options={**flux_entry.options, "fallback_entity": fallback})
    await hass.async_block_till_done()
    return flux_entry


@pytest.mark.parametrize("entry_model", BACKENDS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault_answered_by_flux_or_the_fallback(
    hass: HomeAssistant, with_fallback: MockConfigEntry, fake_flux: FakeFlux, fault: Fault, entry_model: str
) -> None:
    fault.arrange(fake_flux)
    if fault.refused:
        await fake_flux.stop()
    result, after = await one_command(hass, load_wav(KITCHEN) + silence(fault.silence_after))
    assert (result.result, result.text) == (stt.SpeechResultState.SUCCESS, fixture_text(KITCHEN)), fault.name
    last = with_fallback.runtime_data.history[-1]
    if fault.outcome == "text":
        assert last["fallback"] is False, fault.name
    elif fault.outcome.startswith("error:"):
        assert last["fallback"] is True and last["error_code"] == fault.outcome.removeprefix("error:"), fault.name
    assert after is None or after <= BOUND, f"answered {after:.2f} s after the last audio"
    await heal(fake_flux, fault)
    result, _ = await one_command(hass, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN)
    assert {c["model"] for c in with_fallback.runtime_data.history} == {entry_model}  # the backend under test
    assert {s.query["model"][0] for s in fake_flux.streams} <= {entry_model}


async def test_while_flux_is_down_commands_skip_it_and_diagnostics_say_so(
    hass: HomeAssistant, with_fallback: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    fake_flux.script.handshake_status = 503
    result, _ = await one_command(hass, load_wav(KITCHEN))
    assert result.text == fixture_text(KITCHEN)
    handshakes = fake_flux.handshakes
    result, _ = await one_command(hass, load_wav(TIMER))  # only the fallback can know this one
    assert result.text == fixture_text(TIMER)
    assert fake_flux.handshakes == handshakes  # Flux was not tried: no waiting for its failure
    diagnostics: dict[str, Any] = await async_get_config_entry_diagnostics(hass, with_fallback)
    assert diagnostics["fallback"]["flux_down"] is True
    assert diagnostics["fallback"]["last_flux_error"] == "flux-unavailable"
    assert diagnostics["counters"]["fallback"] == 2
    assert [c["fallback"] for c in diagnostics["recent_commands"]] == [True, True]
    # Flux recovers: after the backoff it is tried again and answers.
    fake_flux.script = Script()
    await asyncio.sleep(2.2)
    result, _ = await one_command(hass, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN)
    assert fake_flux.handshakes == handshakes + 1
    assert with_fallback.runtime_data.history[-1]["fallback"] is False
    assert (await async_get_config_entry_diagnostics(hass, with_fallback))["fallback"]["flux_down"] is False


async def test_a_fallback_that_fails_gives_the_flux_error(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    async with wyoming_peer("--error") as failing:
        fallback = await _wyoming_entity(hass, failing)
        hass.config_entries.async_update_entry(flux_entry, options={"fallback_entity": fallback})
        fake_flux.script.handshake_status = 402
        result, _ = await one_command(hass, load_wav(KITCHEN))
        assert result.result is stt.SpeechResultState.ERROR
        last = flux_entry.runtime_data.history[-1]
        assert last["error_code"] == "flux-no-credit" and last["fallback"] is False
        assert any(note.startswith("fallback-failed") for note in last["notes"])


async def test_the_option_offers_other_stt_entities_only(
    hass: HomeAssistant, flux_entry: MockConfigEntry, peer: Peer
) -> None:
    fallback = await _wyoming_entity(hass, peer)
    options = {"end_of_speech": "flux", "eot_threshold": 0.7, "eot_timeout_ms": 5000, "boost_exposed_names": True,
               "no_speech_timeout": 8, "max_command_seconds": 30}
    result = await hass.config_entries.options.async_init(flux_entry.entry_id)
    part = next(v for k, v in result["data_schema"].schema.items() if k == "fallback")
    selector = next(v for k, v in part.schema.schema.items() if k == "fallback_entity")
    assert selector.config["domain"] == ["stt"] and selector.config["exclude_entities"] == [ENTITY_ID]
    for wrong in (ENTITY_ID, "light.kitchen"):
        with pytest.raises(InvalidData):
            await hass.config_entries.options.async_configure(
                result["flow_id"], options_form({**options, "fallback_entity": wrong}))
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], options_form({**options, "fallback_entity": fallback}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert flux_entry.options["fallback_entity"] == fallback


@pytest.mark.parametrize("entry_model", BACKENDS)
async def test_a_capped_month_goes_to_the_fallback_without_opening_flux(
    hass: HomeAssistant, with_fallback: MockConfigEntry, fake_flux: FakeFlux, entry_model: str
) -> None:
    hass.config_entries.async_update_entry(with_fallback, options={**with_fallback.options, "monthly_cap_minutes": 1})
    assert await hass.config_entries.async_reload(with_fallback.entry_id)  # as saving the options does
    await hass.async_block_till_done()
    result, _ = await one_command(hass, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN) and fake_flux.handshakes == 1  # under the cap: Flux
    with_fallback.runtime_data.usage.audio_seconds = 60.0  # the month's minute is used up
    assert with_fallback.runtime_data.usage.cap_reached()
    result, _ = await one_command(hass, load_wav(TIMER))  # only the fallback can know this one
    assert result.result is stt.SpeechResultState.SUCCESS and result.text == fixture_text(TIMER)
    assert fake_flux.handshakes == 1  # no Flux stream once the cap is reached
    assert with_fallback.runtime_data.history[-1]["fallback"] is True
