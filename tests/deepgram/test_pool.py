"""Warm Flux connections: ready sockets, Configure for per-command terms, stale sockets, recycling, backoff."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, load_wav, silence
from tests.wyoming_io import (
    audio_events,
    command_with_names,
    one_command,
    read_until,
    until,
)
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_MULTI
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"


async def warm_server(config: SessionConfig, *models: str, size: int = 1, max_age: float = 8.0) -> WyomingServer:
    settings = dataclasses.replace(make_settings(config, *models), warm_connections=size, warm_max_age=max_age)
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    return server






async def test_a_command_takes_the_warm_socket_and_a_new_one_is_opened(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    server = await warm_server(session_config)
    try:
        assert server.port is not None and server.pool is not None
        await until(lambda: len(fake_flux.streams) == 1)
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))
        assert Transcript.from_event(event).text == fixture_text(KITCHEN)
        assert fake_flux.streams[0].audio_bytes > 0  # the command ran on the socket opened before it
        await until(lambda: len(fake_flux.streams) == 2)  # and the pool refilled
        assert fake_flux.streams[1].audio_bytes == 0 and server.pool.taken == 1
        assert not any(m.startswith('{"type": "Configure"') for m in fake_flux.streams[0].client_messages)
    finally:
        await server.stop()
    await until(lambda: all(s.closed for s in fake_flux.streams))  # stop() closes the waiting socket


async def test_per_command_keyterms_and_hints_go_by_configure(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    server = await warm_server(dataclasses.replace(session_config, keyterms=("Zigbee",)), MODEL_MULTI)
    try:
        assert server.port is not None
        await until(lambda: len(fake_flux.streams) == 1)
        assert fake_flux.streams[0].query["keyterm"] == ["Zigbee"]
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Transcribe(language="de-DE", transcript_names=["Küche"]).event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for event in audio_events(load_wav(KITCHEN) + silence(1)):
                await client.write_event(event)
            await client.write_event(AudioStop().event())
            await read_until(client, "transcript")
        configure = json.loads(fake_flux.streams[0].client_messages[0])
        assert configure == {"type": "Configure", "keyterms": ["Zigbee", "Küche"], "language_hints": ["de"]}
    finally:
        await server.stop()


async def test_a_command_the_warm_socket_does_not_fit_connects_cold(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    server = await warm_server(session_config, MODEL_EN, MODEL_MULTI)
    try:
        assert server.port is not None
        await until(lambda: len(fake_flux.streams) == 1)
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Transcribe(name=MODEL_MULTI).event())
            await client.write_event(AudioStart(rate=48000, width=2, channels=1).event())
            await client.write_event(AudioStop().event())
            await read_until(client, "transcript")
        assert fake_flux.streams[0].audio_bytes == 0  # the warm English socket was left alone
        assert fake_flux.streams[1].query["model"] == [MODEL_MULTI]
    finally:
        await server.stop()


async def test_a_warm_socket_dead_on_first_use_is_replaced_and_nothing_is_lost(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.drop_streams = {0}
    server = await warm_server(session_config)
    try:
        assert server.port is not None
        await until(lambda: len(fake_flux.streams) == 1)
        pcm = load_wav(KITCHEN) + silence(1)
        event, _ = await one_command(server.port, pcm, pace=1e6)
        assert Transcript.from_event(event).text == fixture_text(KITCHEN)
        assert fake_flux.streams[0].closed and fake_flux.streams[0].audio_bytes == 0  # the warm one died
        fresh = [s for s in fake_flux.streams if s.audio_bytes]
        assert len(fresh) == 1 and fresh[0].audio_seconds >= 1.84  # all the speech arrived on the new one
    finally:
        await server.stop()


async def test_idle_closes_and_age_are_handled_by_replacing_sockets(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.idle_close_after = 0.5  # Flux's idle limit, much shorter than our max age
    server = await warm_server(session_config, max_age=30)
    try:
        assert server.port is not None and server.pool is not None
        await until(lambda: len(fake_flux.streams) >= 3)  # closed by Flux, noticed, replaced, again
        fake_flux.script.idle_close_after = None
        await asyncio.sleep(0.6)
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))
        assert Transcript.from_event(event).text == fixture_text(KITCHEN)
    finally:
        await server.stop()
    before = len(fake_flux.streams)
    recycling = await warm_server(session_config, max_age=2.0)
    try:
        await until(lambda: len(fake_flux.streams) >= before + 3, timeout=8)  # opened, then replaced twice
        assert all(s.closed for s in fake_flux.streams[before:-1])  # the replaced ones were closed
    finally:
        await recycling.stop()


async def test_an_idle_server_makes_no_handshakes_and_a_command_opens_the_window(
    session_config: SessionConfig, fake_flux: FakeFlux
) -> None:
    settings = dataclasses.replace(make_settings(session_config), warm_connections=1, warm_window=3.0)
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.port is not None and server.pool is not None
        await asyncio.sleep(1.0)
        assert fake_flux.handshakes == 0  # idle since start: nothing held, nothing opened
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))  # cold, then the window opens
        assert Transcript.from_event(event).text == fixture_text(KITCHEN)
        await until(lambda: len(fake_flux.streams) == 2)
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))  # a follow-up: warm
        assert Transcript.from_event(event).text == fixture_text(KITCHEN) and server.pool.taken == 1
        await until(lambda: all(s.closed for s in fake_flux.streams), timeout=8)  # the window closed
        handshakes = fake_flux.handshakes
        await asyncio.sleep(2.0)
        assert fake_flux.handshakes == handshakes  # idle again: no more handshakes
    finally:
        await server.stop()


@pytest.mark.parametrize(("status", "code", "most"), [(401, "flux-auth", 1), (402, "flux-no-credit", 1),
                                                 (503, "flux-unavailable", 3)])
async def test_refusals_are_retried_only_when_a_retry_can_help_and_commands_get_a_clear_error(
    session_config: SessionConfig, fake_flux: FakeFlux, status: int, code: str, most: int
) -> None:
    fake_flux.script.handshake_status = status
    server = await warm_server(session_config)
    try:
        assert server.port is not None
        await asyncio.sleep(2.5)
        assert 1 <= fake_flux.handshakes <= most  # 401/402: once until the next command; 5xx: 1 s, then 2 s
        event, _ = await one_command(server.port, silence(0.2))
        assert Error.from_event(event).code == code
    finally:
        await server.stop()


async def test_a_configure_never_carries_more_keyterm_tokens_than_the_limit(
    session_config: SessionConfig, fake_flux: FakeFlux
) -> None:
    """Over the limit a Configure is not refused: the stream stops transcribing (the fake, like Deepgram's /v1,
    goes silent). Names in Chinese once counted as a token a name, so a hundred of them went."""
    ten = "甲乙丙丁戊己庚辛壬癸"
    server = await warm_server(session_config)
    try:
        assert server.port is not None
        await until(lambda: len(fake_flux.streams) == 1)
        names = [f"客厅{a}{b}号灯" for a in ten for b in ten]  # 100 names, 600 characters
        assert await command_with_names(server.port, names) == fixture_text(KITCHEN)
        stream = fake_flux.streams[0]
        configure = json.loads(next(m for m in stream.client_messages if '"Configure"' in m))
        assert 0 < len(configure["keyterms"]) < len(names) and not stream.over_limit_configure
    finally:
        await server.stop()


async def test_a_refused_configure_is_logged_once_and_the_command_goes_on(
    session_config: SessionConfig, fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture
) -> None:
    fake_flux.script.configure_failure = True  # ConfigureFailure: type, request_id, sequence_id, no reason
    server = await warm_server(session_config)
    try:
        assert server.port is not None
        await until(lambda: len(fake_flux.streams) == 1)
        assert await command_with_names(server.port, ["Küche"]) == fixture_text(KITCHEN)
        refused = [r for r in caplog.records if "Flux refused the new keyterms" in r.getMessage()]
        assert len(refused) == 1 and refused[0].levelname == "WARNING"
        # what it answers (the stream's request), and no reason made up where Deepgram gives none
        assert fake_flux.streams[0].sent[0]["request_id"] in refused[0].getMessage()
        assert "reason" not in refused[0].getMessage()
    finally:
        await server.stop()
