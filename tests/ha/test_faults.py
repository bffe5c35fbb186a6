"""The fault matrix through the Home Assistant entity, on Flux and on Nova-3 (an entry whose model is nova-3,
so the English fixture goes to /v1/listen of the same fake): ERROR (with the code in diagnostics) or the best
text."""

from __future__ import annotations

import asyncio

import pytest
from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.fake_flux import FakeFlux
from tests.faults import BOUND_AFTER_AUDIO, FAULTS, Fault, check_outcome, heal
from tests.ha.conftest import BACKENDS
from tests.ha.test_stt_entity import entity as stt_entity
from tests.ha.test_wyoming_integration import metadata
from tests.helpers import PacedStream, fixture_text, load_wav, silence

KITCHEN = "turn_on_the_kitchen_light"


async def one_command(hass: HomeAssistant, pcm: bytes) -> tuple[stt.SpeechResult, float | None]:
    entity = stt_entity(hass)
    stream = PacedStream(pcm, pace=10)
    async with asyncio.timeout(15):
        result = await entity.async_process_audio_stream(metadata(), aiter(stream))
    after = None if stream.exhausted_at is None else asyncio.get_running_loop().time() - stream.exhausted_at
    return result, after


@pytest.mark.parametrize("entry_model", BACKENDS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, fault: Fault,
                     entry_model: str) -> None:
    fault.arrange(fake_flux)
    if fault.refused:
        await fake_flux.stop()
    result, after = await one_command(hass, load_wav(KITCHEN) + silence(fault.silence_after))
    last = flux_entry.runtime_data.history[-1]
    if result.result is stt.SpeechResultState.ERROR:
        text, code = None, last["error_code"]
    else:
        text, code = result.text, None
    check_outcome(fault, text=text, error_code=code, expected_text=fixture_text(KITCHEN))
    assert after is None or after <= BOUND_AFTER_AUDIO, f"answered {after:.2f} s after the last audio"
    await heal(fake_flux, fault)
    result, _ = await one_command(hass, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN)
    assert fake_flux.streams[-1].query["model"] == [entry_model]  # the backend under test served it
