"""Home Assistant's own wyoming integration, unmodified, as the client of our server."""

from __future__ import annotations

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.fake_flux import FakeFlux
from tests.ha.conftest import needs_home_assistant
from tests.helpers import PacedStream, fixture_text, load_wav, silence
from wyoming_flux.server.server import WyomingServer

# Before 2026.10 Home Assistant's Wyoming client uploads the whole stream before it reads (its own VAD ends the
# command) and pins wyoming 1.7.2, older than the 1.10 the server is built on, so the server cannot run in
# that release's environment.
pytestmark = needs_home_assistant("2026.10.0", "the Wyoming client's early end of turn and wyoming 1.10")

KITCHEN = "turn_on_the_kitchen_light"


def metadata(language: str = "en-US") -> stt.SpeechMetadata:
    return stt.SpeechMetadata(
        language=language,
        format=stt.AudioFormats.WAV,
        codec=stt.AudioCodecs.PCM,
        bit_rate=stt.AudioBitRates.BITRATE_16,
        sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
        channel=stt.AudioChannels.CHANNEL_MONO,
    )


async def setup_wyoming(hass: HomeAssistant, server: WyomingServer) -> stt.SpeechToTextEntity:
    entry = MockConfigEntry(domain="wyoming", data={"host": "127.0.0.1", "port": server.port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    (registered,) = [e for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
                     if e.domain == "stt"]
    entity = stt.async_get_speech_to_text_entity(hass, registered.entity_id)
    assert entity is not None
    return entity


async def test_home_assistant_gets_the_text_when_flux_ends_the_turn(
    hass: HomeAssistant, ha_core: HomeAssistant, wyoming_server: WyomingServer, fake_flux: FakeFlux
) -> None:
    entity = await setup_wyoming(hass, wyoming_server)
    # What HA read from our Info: it will not run its own VAD, and offers English variants and multi languages.
    assert entity.audio_processing.requires_external_vad is False
    assert {"en-US", "en-GB", "de-DE"} <= set(entity.supported_languages)

    stream = PacedStream(load_wav(KITCHEN) + silence(5))  # real-time pace, 10 ms chunks, as HA sends them
    result = await entity.internal_async_process_audio_stream(metadata(), aiter(stream))

    assert result.result is stt.SpeechResultState.SUCCESS
    assert result.text == fixture_text(KITCHEN)
    assert not stream.exhausted, "EndOfTurn must end the command, not the end of the stream"
    assert stream.seconds_sent < len(load_wav(KITCHEN)) / 32000 + 1.0  # within a second after the speech
    assert fake_flux.streams[0].query["model"] == ["flux-general-en"]


async def test_home_assistant_gets_an_error_result_when_flux_refuses(
    hass: HomeAssistant, ha_core: HomeAssistant, wyoming_server: WyomingServer, fake_flux: FakeFlux
) -> None:
    entity = await setup_wyoming(hass, wyoming_server)
    fake_flux.script.handshake_status = 401
    stream = PacedStream(load_wav(KITCHEN) + silence(5))
    result = await entity.internal_async_process_audio_stream(metadata(), aiter(stream))
    assert result.result is stt.SpeechResultState.ERROR
    assert stream.seconds_sent < 1.0  # failed fast
