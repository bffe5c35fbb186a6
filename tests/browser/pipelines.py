"""Assist pipelines in a real Home Assistant process, driven as the frontend and satellites drive them: config
flows over the REST API, pipelines and their runs over the websocket API."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.browser.harness import HomeAssistant
from tests.helpers import PacedStream


async def flow(real: HomeAssistant, handler: str, *steps: dict[str, Any]) -> dict[str, Any]:
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


async def run_pipeline(real: HomeAssistant, pipeline: str, pcm: bytes, end_stage: str = "stt",
                       ) -> tuple[dict[str, dict[str, Any]], int]:
    """An Assist pipeline run (from speech-to-text to `end_stage`) over the websocket API, as a browser or
    satellite sends it: audio as binary messages on the run's handler id, at real-time pace; the events by type, and the bytes sent
    before the answer came."""
    events: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{real.url}/api/websocket") as ws:
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": real.tokens["access_token"]})
        assert (await ws.receive_json())["type"] == "auth_ok"
        await ws.send_json({"id": 1, "type": "assist_pipeline/run", "start_stage": "stt", "end_stage": end_stage,
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


async def pipeline(ha: HomeAssistant, stt_engine: str, language: str) -> str:
    (pipeline,) = await ha.ws({
        "type": "assist_pipeline/pipeline/create", "name": f"{language} {stt_engine}", "language": language[:2],
        "conversation_engine": "conversation.home_assistant", "conversation_language": language[:2],
        "stt_engine": stt_engine, "stt_language": language, "tts_engine": None, "tts_language": None,
        "tts_voice": None, "wake_word_entity": None, "wake_word_id": None})
    return str(pipeline["id"])


async def both_doors(ha: HomeAssistant, api_key: str, flux_url: str, wyoming_port: int | None) -> dict[str, str]:
    """Our integration (Flux English, Nova-3 for the other languages, on `flux_url`) and Home Assistant's Wyoming
    integration in front of our server, both added through their config flows: the STT entity of each door."""
    created = await flow(ha, "deepgram_flux", {"api_key": api_key, "model": "flux-general-en", "endpoint": "custom",
                                                "custom_url": flux_url}, {"nova": True})
    assert created["type"] == "create_entry", created
    created = await flow(ha, "wyoming", {"host": "127.0.0.1", "port": wyoming_port})
    assert created["type"] == "create_entry", created
    (entities,) = await ha.ws({"type": "config/entity_registry/list"})
    return {e["platform"]: e["entity_id"] for e in entities if e["entity_id"].startswith("stt.")}
