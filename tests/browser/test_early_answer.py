"""Early answers in a real Home Assistant (`python -m homeassistant`, the browser test's harness, no browser):
Home Assistant's own intent recogniser decides whether the words are a complete command, through both doors —
our integration (asking the default agent in process) and Home Assistant's Wyoming integration in front of our
server (asking over Home Assistant's WebSocket API). The fake Flux says EagerEndOfTurn 0.2 s and EndOfTurn
0.8 s after speech ends: a complete command is answered at the eager event, before Flux's own end, and the
light turns on; a command with a pause comes back whole, in English on Flux and in Polish on Nova-3; switched off
or without a reachable Home Assistant, a command ends as before."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.browser.harness import HomeAssistant
from tests.browser.pipelines import both_doors, flow, pipeline, run_pipeline
from tests.conftest import API_KEY, make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, free_port, load_wav, silence
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_NOVA
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"
PAUSED = {"en-US": ("set_a_timer_pause", "set a timer | for five minutes"),
          "pl-PL": ("pl_ustaw_minutnik_pauza", "ustaw minutnik | na dziesięć minut")}


async def _light_on(ha: HomeAssistant) -> bool:
    state = await ha.rest("/api/states/input_boolean.kitchen_power")
    return bool(state["state"] == "on")


@pytest.mark.timeout(420)  # a cold start of Home Assistant on a busy machine, and nine commands in real time
async def test_home_assistant_decides_when_a_command_is_complete_through_both_doors(
    home_assistant: HomeAssistant, fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    ha = home_assistant
    fake_flux.script.eager_silence, fake_flux.script.eot_silence = 0.2, 0.8
    server = WyomingServer(replace(make_settings(session_config, MODEL_EN, MODEL_NOVA), hass_url=ha.url,
                                hass_token=ha.tokens["access_token"]), "tcp://127.0.0.1:0")
    await server.start()
    try:
        stt_of = await both_doors(ha, API_KEY, fake_flux.url, server.port)
        for door in ("deepgram_flux", "wyoming"):
            # A complete command: answered at EagerEndOfTurn, before Flux's own EndOfTurn, and carried out.
            fake_flux.script.transcripts = [fixture_text(KITCHEN)]
            await ha.ws({"type": "call_service", "domain": "input_boolean", "service": "turn_off",
                         "target": {"entity_id": "input_boolean.kitchen_power"}})
            streams = len(fake_flux.streams)
            english = await pipeline(ha, stt_of[door], "en-US")
            events, _ = await run_pipeline(ha, english, load_wav(KITCHEN) + silence(3), end_stage="intent")
            assert "error" not in events, (door, events.get("error"), ha.log_tail())
            assert events["stt-end"]["stt_output"]["text"] == fixture_text(KITCHEN), door
            stream = fake_flux.streams[streams]
            assert stream.query["eager_eot_threshold"] == ["0.5"], door
            assert stream.events("EagerEndOfTurn") and not stream.events("EndOfTurn"), (door, stream.sent)
            assert await _light_on(ha), door
            # A speaker who pauses: the words at the pause are not a complete command, so the command waits.
            for language, (fixture, transcript) in PAUSED.items():
                fake_flux.script.transcripts = [transcript]
                streams = len(fake_flux.streams)
                events, _ = await run_pipeline(ha, await pipeline(ha, stt_of[door], language),
                                               load_wav(fixture) + silence(3))
                assert "error" not in events, (door, language, events.get("error"), ha.log_tail())
                assert events["stt-end"]["stt_output"]["text"] == fixture_text(fixture), (door, language)
                stream = fake_flux.streams[streams]
                if language == "pl-PL":  # Nova-3, with the short endpoint the check makes safe
                    assert (stream.query["model"], stream.query["endpointing"]) == (["nova-3"], ["200"]), door
    finally:
        await server.stop()


@pytest.mark.timeout(300)
async def test_with_early_answers_off_or_home_assistant_unreachable_commands_end_as_before(
    home_assistant: HomeAssistant, fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    """Two servers behind Home Assistant's Wyoming integration: one with early answers switched off, one whose
    Home Assistant URL leads nowhere. Both end the command on Flux's own EndOfTurn, with no eager threshold
    asked for, exactly as without the feature."""
    ha = home_assistant
    fake_flux.script.eager_silence, fake_flux.script.eot_silence = 0.2, 0.8
    fake_flux.script.transcripts = [fixture_text(KITCHEN)]
    settings = make_settings(session_config, MODEL_EN, MODEL_NOVA)
    servers = {
        "off": WyomingServer(replace(settings, hass_url=ha.url, hass_token=ha.tokens["access_token"],
                                     session=replace(session_config, early_answer=False)), "tcp://127.0.0.1:0"),
        "unreachable": WyomingServer(replace(settings, hass_url=f"http://127.0.0.1:{free_port()}",
                                             hass_token="token"), "tcp://127.0.0.1:0"),
    }
    try:
        for case, server in servers.items():
            await server.start()
            created = await flow(ha, "wyoming", {"host": "127.0.0.1", "port": server.port})
            assert created["type"] == "create_entry", (case, created)
            (entities,) = await ha.ws({"type": "config/entity_registry/list"})
            (stt,) = [e["entity_id"] for e in entities if e["config_entry_id"] == created["result"]["entry_id"]
                      and e["entity_id"].startswith("stt.")]
            streams = len(fake_flux.streams)
            events, _ = await run_pipeline(ha, await pipeline(ha, stt, "en-US"), load_wav(KITCHEN) + silence(3))
            assert events["stt-end"]["stt_output"]["text"] == fixture_text(KITCHEN), case
            stream = fake_flux.streams[streams]
            assert "eager_eot_threshold" not in stream.query and stream.events("EndOfTurn"), (case, stream.query)
    finally:
        for server in servers.values():
            await server.stop()
