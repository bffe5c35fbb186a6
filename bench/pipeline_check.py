"""One real Home Assistant assist pipeline run per mode: our entity with Flux ending the turn, and our entity
behind Home Assistant's own VAD. Prints when stt-end came, measured from the end of speech.
Run through bench/vad_vs_flux.py --pipeline (pytest provides Home Assistant's test harness)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import custom_components.deepgram_flux  # noqa: E402,F401  (before the harness's own custom_components)
import pytest  # noqa: E402
from homeassistant.components import assist_pipeline, stt  # noqa: E402
from homeassistant.components.assist_pipeline import PipelineEventType, PipelineStage  # noqa: E402
from homeassistant.core import Context, HomeAssistant  # noqa: E402
from homeassistant.setup import async_setup_component  # noqa: E402
from pytest_homeassistant_custom_component.common import MockConfigEntry  # noqa: E402

from tests.fake_flux import FakeFlux  # noqa: E402
from tests.helpers import PacedStream, load_wav, silence  # noqa: E402
from wyoming_flux.cli.client import speech_end  # noqa: E402

KITCHEN = "turn_on_the_kitchen_light"


@pytest.mark.parametrize("mode", ["flux", "ha_vad"])
async def test_pipeline_closing_time(hass: HomeAssistant, enable_custom_integrations: None, socket_enabled: None,
                                     mode: str) -> None:
    fake = FakeFlux(api_key="bench-key")
    await fake.start()
    try:
        for component in ("homeassistant", "intent", "conversation", "assist_pipeline"):
            assert await async_setup_component(hass, component, {})
        entry = MockConfigEntry(domain="deepgram_flux", options={"end_of_speech": mode}, data={
            "api_key": "bench-key", "model": "flux-general-en", "endpoint": "custom", "custom_url": fake.url})
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        pipeline = assist_pipeline.async_get_pipeline(hass)
        await assist_pipeline.async_update_pipeline(hass, pipeline, stt_engine="stt.deepgram_flux_flux_general_en",
                                                    stt_language="en-US")
        stt_end: list[float] = []

        def on_event(event: assist_pipeline.PipelineEvent) -> None:
            if event.type is PipelineEventType.STT_END:
                stt_end.append(time.monotonic())

        speech = load_wav(KITCHEN)
        stream = PacedStream(speech + silence(5))
        started = time.monotonic()
        await assist_pipeline.async_pipeline_from_audio_stream(
            hass, context=Context(), event_callback=on_event, end_stage=PipelineStage.STT, stt_stream=aiter(stream),
            stt_metadata=stt.SpeechMetadata(language="en-US", format=stt.AudioFormats.WAV, codec=stt.AudioCodecs.PCM,
                                            bit_rate=stt.AudioBitRates.BITRATE_16,
                                            sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
                                            channel=stt.AudioChannels.CHANNEL_MONO),
        )
        after = stt_end[0] - started - speech_end(speech, 16000, 2, 1)
        print(f"\nassist pipeline, {mode:6}: stt-end {after * 1000:.0f} ms after the end of speech")
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await fake.stop()
