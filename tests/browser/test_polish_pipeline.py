"""A Polish voice pipeline in a real Home Assistant (`python -m homeassistant` in a process of its own, the
harness of the browser test, no browser): our integration and Home Assistant's own Wyoming integration (in
front of our Wyoming server) added through the config flow API, a Polish pipeline on each, run over the
websocket API as a browser or a satellite sends audio. Both reach the fake Deepgram's /v1/listen with
model=nova-3 and language=pl, and are answered on Deepgram's endpointing while the audio still streams; English
on the same integration entry still goes to Flux."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser.harness import HomeAssistant, onboarded_home_assistant
from tests.conftest import API_KEY, make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import PacedStream, fixture_text, load_wav, silence
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_NOVA
from wyoming_flux.server.server import FluxServer
from wyoming_flux.turn.session import SessionConfig

POLISH = "pl_wlacz_swiatlo_w_kuchni"
KITCHEN = "turn_on_the_kitchen_light"


@pytest.fixture
async def home_assistant(tmp_path: Path) -> AsyncIterator[HomeAssistant]:
    async with onboarded_home_assistant(tmp_path / "config") as ha:
        yield ha
    log = ha.log_text()
    assert API_KEY not in log and "custom_components/deepgram_flux/" not in log  # no key, no traceback of ours
    assert not [line for line in log.splitlines() if "ERROR" in line and "deepgram_flux" in line]


@pytest.fixture
async def wyoming_server(session_config: SessionConfig) -> AsyncIterator[FluxServer]:
    """Our server with its defaults: Flux English, Nova-3 for the other languages."""
    server = FluxServer(make_settings(session_config, MODEL_EN, MODEL_NOVA), "tcp://127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()


async def _flow(real: HomeAssistant, handler: str, *steps: dict[str, Any]) -> dict[str, Any]:
    """A config flow through Home Assistant's REST API, as the frontend drives it, one form per step: its final
    answer."""
    headers = {"Authorization": f"Bearer {real.tokens['access_token']}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{real.url}/api/config/config_entries/flow", json={"handler": handler}) as response:
            assert response.status == 200, await response.text()
            answer = dict(await response.json())
        for data in steps:
            async with session.post(f"{real.url}/api/config/config_entries/flow/{answer['flow_id']}",
                                    json=data) as response:
                assert response.status == 200, await response.text()
                answer = dict(await response.json())
        return answer


async def _run_pipeline(real: HomeAssistant, pipeline: str, pcm: bytes) -> tuple[dict[str, dict[str, Any]], int]:
    """An Assist pipeline run (speech-to-text only) over the websocket API, as a browser or satellite sends it:
    audio as binary messages on the run's handler id, at real-time pace; the events by type, and the bytes sent
    before the answer came."""
    events: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{real.url}/api/websocket") as ws:
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": real.tokens["access_token"]})
        assert (await ws.receive_json())["type"] == "auth_ok"
        await ws.send_json({"id": 1, "type": "assist_pipeline/run", "start_stage": "stt", "end_stage": "stt",
                            "input": {"sample_rate": 16000}, "pipeline": pipeline})

        async def receive() -> None:
            while True:
                message = await ws.receive_json()
                if message.get("type") == "result":
                    assert message["success"], message
                elif message.get("type") == "event":
                    events[message["event"]["type"]] = message["event"].get("data") or {}
                    if message["event"]["type"] == "run-end":
                        return

        receiver = asyncio.create_task(receive())
        async with asyncio.timeout(20):
            while "run-start" not in events:
                await asyncio.sleep(0.01)
        handler = bytes([events["run-start"]["runner_data"]["stt_binary_handler_id"]])
        sent = 0
        async for chunk in PacedStream(pcm):
            if "stt-end" in events or "error" in events:
                break  # answered while the audio still streams
            await ws.send_bytes(handler + chunk)
            sent += len(chunk)
        else:
            await ws.send_bytes(handler)  # the end of the audio
        await asyncio.wait_for(receiver, 20)
    return events, sent


async def _pipeline(ha: HomeAssistant, stt_engine: str, language: str) -> str:
    (pipeline,) = await ha.ws({
        "type": "assist_pipeline/pipeline/create", "name": f"{language} {stt_engine}", "language": language[:2],
        "conversation_engine": "conversation.home_assistant", "conversation_language": language[:2],
        "stt_engine": stt_engine, "stt_language": language, "tts_engine": None, "tts_language": None,
        "tts_voice": None, "wake_word_entity": None, "wake_word_id": None})
    return str(pipeline["id"])


@pytest.mark.timeout(300)  # a cold start of Home Assistant on a busy machine
async def test_a_polish_pipeline_reaches_nova_through_the_integration_and_through_the_wyoming_server(
    home_assistant: HomeAssistant, fake_flux: FakeFlux, wyoming_server: FluxServer
) -> None:
    ha = home_assistant
    created = await _flow(ha, "deepgram_flux", {"api_key": API_KEY, "model": "flux-general-en", "endpoint": "custom",
                                                 "custom_url": fake_flux.url}, {"nova": True})
    assert created["type"] == "create_entry", created
    created = await _flow(ha, "wyoming", {"host": "127.0.0.1", "port": wyoming_server.port})
    assert created["type"] == "create_entry", created
    (entities,) = await ha.ws({"type": "config/entity_registry/list"})
    stt_of = {e["platform"]: e["entity_id"] for e in entities if e["entity_id"].startswith("stt.")}
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    pcm = load_wav(POLISH) + silence(4)
    for platform in ("deepgram_flux", "wyoming"):
        streams = len(fake_flux.streams)
        events, sent = await _run_pipeline(ha, await _pipeline(ha, stt_of[platform], "pl-PL"), pcm)
        assert "error" not in events, (platform, events.get("error"), ha.log_tail())
        assert events["stt-end"]["stt_output"]["text"] == fixture_text(POLISH), platform
        assert sent < len(pcm) - 2 * 32000, platform  # answered inside the 4 s of silence, the audio streaming
        nova = fake_flux.streams[streams]
        assert (nova.query["model"], nova.query["language"]) == (["nova-3"], ["pl"]), platform
        assert any(m.get("speech_final") for m in nova.sent), platform
    # English through the same integration entry: Flux.
    fake_flux.script.transcripts = [fixture_text(KITCHEN)]
    streams = len(fake_flux.streams)
    events, _ = await _run_pipeline(ha, await _pipeline(ha, stt_of["deepgram_flux"], "en-US"),
                                    load_wav(KITCHEN) + silence(3))
    assert events["stt-end"]["stt_output"]["text"] == fixture_text(KITCHEN)
    assert fake_flux.streams[streams].query["model"] == ["flux-general-en"]
