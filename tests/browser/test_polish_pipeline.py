"""A Polish voice pipeline in a real Home Assistant (`python -m homeassistant` in a process of its own, the
harness of the browser test, no browser): our integration and Home Assistant's own Wyoming integration (in
front of our Wyoming server) added through the config flow API, a Polish pipeline on each, run over the
websocket API as a browser or a satellite sends audio. Both reach the fake Deepgram's /v1/listen with
model=nova-3 and language=pl, and are answered on Deepgram's endpointing while the audio still streams; English
on the same integration entry still goes to Flux."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.browser.harness import HomeAssistant
from tests.browser.pipelines import both_doors, pipeline, run_pipeline
from tests.conftest import API_KEY, make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, load_wav, silence
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_NOVA
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

POLISH = "pl_wlacz_swiatlo_w_kuchni"
KITCHEN = "turn_on_the_kitchen_light"


@pytest.fixture
async def wyoming_server(session_config: SessionConfig) -> AsyncIterator[WyomingServer]:
    """Our server with its defaults: Flux English, Nova-3 for the other languages."""
    server = WyomingServer(make_settings(session_config, MODEL_EN, MODEL_NOVA), "tcp://127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()


@pytest.mark.timeout(300)  # a cold start of Home Assistant on a busy machine
async def test_a_polish_pipeline_reaches_nova_through_the_integration_and_through_the_wyoming_server(
    home_assistant: HomeAssistant, fake_flux: FakeFlux, wyoming_server: WyomingServer
) -> None:
    ha = home_assistant
    stt_of = await both_doors(ha, API_KEY, fake_flux.url, wyoming_server.port)
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    pcm = load_wav(POLISH) + silence(4)
    for platform in ("deepgram_flux", "wyoming"):
        streams = len(fake_flux.streams)
        events, sent = await run_pipeline(ha, await pipeline(ha, stt_of[platform], "pl-PL"), pcm)
        assert "error" not in events, (platform, events.get("error"), ha.log_tail())
        assert events["stt-end"]["stt_output"]["text"] == fixture_text(POLISH), platform
        assert sent < len(pcm) - 2 * 32000, platform  # answered inside the 4 s of silence, the audio streaming
        nova = fake_flux.streams[streams]
        assert (nova.query["model"], nova.query["language"]) == (["nova-3"], ["pl"]), platform
        assert any(m.get("speech_final") for m in nova.sent), platform
    # English through the same integration entry: Flux.
    fake_flux.script.transcripts = [fixture_text(KITCHEN)]
    streams = len(fake_flux.streams)
    events, _ = await run_pipeline(ha, await pipeline(ha, stt_of["deepgram_flux"], "en-US"),
                                    load_wav(KITCHEN) + silence(3))
    assert events["stt-end"]["stt_output"]["text"] == fixture_text(KITCHEN)
    assert fake_flux.streams[streams].query["model"] == ["flux-general-en"]
