"""Early answers in the Wyoming server when Home Assistant cannot be asked: commands end exactly as without them.
(With a real Home Assistant's recogniser: tests/ha/test_early_answer_server.py.)"""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, free_port, load_wav, silence
from tests.server.test_nova import transcribe
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_NOVA
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"


@pytest.mark.parametrize("model", [MODEL_EN, MODEL_NOVA])
async def test_with_home_assistant_unreachable_commands_end_as_before(session_config: SessionConfig,
                                                                      fake_flux: FakeFlux, model: str) -> None:
    fake_flux.script.eager_silence, fake_flux.script.eot_silence = 0.2, 0.8
    fake_flux.script.transcripts = [fixture_text(KITCHEN)]
    settings = dataclasses.replace(make_settings(session_config, model), hass_url=f"http://127.0.0.1:{free_port()}",
                                   hass_token="a-long-lived-token", metrics_port=0)
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.completion is not None and not server.completion.ready()  # configured, cannot answer
        events, _ = await transcribe(server, "en", load_wav(KITCHEN) + silence(3))
    finally:
        await server.stop()
    assert events[-1].type == "transcript" and events[-1].data["text"] == fixture_text(KITCHEN)
    query = fake_flux.streams[-1].query
    assert "eager_eot_threshold" not in query
    assert query.get("endpointing", ["500"]) == ["500"]
    assert server.metrics is not None
    trigger = "model" if model == MODEL_EN else "speech_final"
    labels = {"outcome": "end_of_turn", "trigger": trigger}
    assert server.metrics.registry.get_sample_value("wyoming_flux_commands_total", labels) == 1


async def test_with_the_clients_end_of_speech_there_is_nothing_to_ask(session_config: SessionConfig) -> None:
    config = dataclasses.replace(session_config, end_on_flux_eot=False)
    settings = dataclasses.replace(make_settings(config), hass_url=f"http://127.0.0.1:{free_port()}",
                                   hass_token="a-long-lived-token", warm_connections=1)
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.completion is None  # Home Assistant's VAD ends commands: nothing is answered early
        assert server.pool is not None and server.pool.options.eager_eot_threshold is None
    finally:
        await server.stop()


async def test_warm_sockets_ask_for_eager_end_of_turn_as_commands_with_early_answers_do(
        session_config: SessionConfig) -> None:
    settings = dataclasses.replace(make_settings(session_config), hass_url=f"http://127.0.0.1:{free_port()}",
                                   hass_token="a-long-lived-token", warm_connections=1)
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.pool is not None and server.pool.options.eager_eot_threshold == 0.5
    finally:
        await server.stop()
