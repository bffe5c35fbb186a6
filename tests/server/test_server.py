"""The Wyoming server over real TCP with the wyoming library's own client, backed by the fake Flux."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from tests.conftest import API_KEY, make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import chunks, fixture_text, load_wav, silence
from tests.wyoming_io import audio_events, port, read_until
from wyoming_flux import __version__
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_MULTI
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"






async def no_event_within(client: AsyncTcpClient, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            event = await client.read_event()
            pytest.fail(f"unexpected event {event}")


async def stream_until(client: AsyncTcpClient, pcm: bytes, answered: asyncio.Future[list[Event]], pace: float = 10.0) -> int:
    """Send 10 ms chunks at `pace` x real time until `answered` is done; return the bytes sent."""
    sent = 0
    for event in audio_events(pcm):
        if answered.done():
            break
        await client.write_event(event)
        sent += len(event.payload or b"")
        await asyncio.sleep(0.01 / pace)
    return sent




async def test_describe_is_answered_from_memory(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        for _ in range(3):
            await client.write_event(Describe().event())
            info = Info.from_event((await read_until(client, "info"))[-1])
    (asr,) = info.asr
    assert asr.version == __version__ and asr.attribution.name == "Deepgram" and asr.installed
    assert asr.requires_external_vad is False and asr.supports_transcript_streaming is True
    models = {m.name: m.languages for m in asr.models}
    assert set(models) == {MODEL_EN, MODEL_MULTI}
    assert {"en", "en-US", "en-GB"} <= set(models[MODEL_EN]) and "de" not in models[MODEL_EN]
    assert {"de", "de-DE", "fr-FR", "ja", "pt-BR", "nl", "hi"} <= set(models[MODEL_MULTI])
    assert fake_flux.handshakes == 0  # Describe never touches Flux
    assert API_KEY not in json.dumps(info.to_dict())  # nor tells anyone the key


async def test_end_of_turn_answers_before_audio_stop_with_streamed_deltas(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    pcm = load_wav(KITCHEN) + silence(5)
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        for round_ in range(2):  # a second command on the same connection works as well
            await client.write_event(Transcribe(language="en-US").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            answered = asyncio.ensure_future(read_until(client, "transcript-stop"))
            sent = await stream_until(client, pcm, answered)
            events = await answered
            assert sent < len(pcm) - 3 * 32000, "the answer must come while audio is still flowing"
            types = [e.type for e in events]
            assert types[0] == "transcript-start" and types[-2:] == ["transcript", "transcript-stop"]
            assert types.count("transcript") == 1
            deltas = "".join(TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type))
            transcript = Transcript.from_event(events[-2])
            assert transcript.text == deltas == fixture_text(KITCHEN)
            # Audio after the answer is discarded, and nothing more is said, until AudioStop.
            for event in audio_events(silence(0.5)):
                await client.write_event(event)
            await client.write_event(AudioStop().event())
            await no_event_within(client, 0.5)
    assert len(fake_flux.streams) == 2
    assert all(s.closed for s in fake_flux.streams)
    assert all(s.audio_bytes < len(pcm) for s in fake_flux.streams)


async def test_a_client_that_uploads_everything_before_reading_still_gets_its_transcript(wyoming_server: WyomingServer) -> None:
    pcm = load_wav(KITCHEN) + silence(3)
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for event in audio_events(pcm):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)


async def test_audio_stop_mid_speech_returns_the_words_heard(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    pcm = load_wav(KITCHEN)[: int(1.3 * 32000)]
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for event in audio_events(pcm):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    text = Transcript.from_event(events[-1]).text
    assert text and fixture_text(KITCHEN).startswith(text) and text != fixture_text(KITCHEN)
    assert '"ForceEndTurn"' in fake_flux.streams[0].client_messages[0]


async def test_silence_only_gets_an_empty_transcript(wyoming_server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for event in audio_events(silence(1)):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    assert Transcript.from_event(events[-1]).text == ""


async def test_multi_model_by_name_with_language_hint_and_keyterms(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    fake_flux.script.languages = ["fr"]
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(Transcribe(name=MODEL_MULTI, language="fr-FR", transcript_names=["Léa"],
                                            transcript_terms=["lumière"]).event())
        await client.write_event(AudioStart(rate=48000, width=2, channels=1).event())
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    assert Transcript.from_event(events[-1]).text == ""
    query = fake_flux.streams[0].query
    assert query["model"] == [MODEL_MULTI] and query["language_hint"] == ["fr"]
    assert query["keyterm"] == ["Léa", "lumière"] and query["sample_rate"] == ["48000"]


async def test_language_alone_picks_the_model(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        for language in ("de-AT", "en-GB"):
            await client.write_event(Transcribe(language=language).event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(AudioStop().event())
            await read_until(client, "transcript")
    assert [s.query["model"][0] for s in fake_flux.streams] == [MODEL_MULTI, MODEL_EN]
    assert "language_hint" not in fake_flux.streams[1].query


async def test_flux_failure_is_a_coded_error_and_the_next_command_works(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        for status, code in ((401, "flux-auth"), (403, "flux-forbidden"), (429, "flux-rate-limited"), (500, "flux-unavailable")):
            fake_flux.script.handshake_status = status
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            events = await read_until(client, "transcript")
            error = Error.from_event(events[-1])
            assert error.code == code and f"HTTP {status}" in error.text
            await client.write_event(AudioStop().event())
        fake_flux.script.handshake_status = None
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        answered = asyncio.ensure_future(read_until(client, "transcript-stop"))
        await stream_until(client, load_wav(KITCHEN) + silence(3), answered)
        assert Transcript.from_event((await answered)[-2]).text == fixture_text(KITCHEN)


async def test_unusable_audio_format_is_a_clear_error(wyoming_server: WyomingServer, fake_flux: FakeFlux,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=7, channels=1).event())
        error = Error.from_event((await read_until(client, "error"))[-1])
        assert error.code == "audio-format" and "width" in error.text
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=99, audio=bytes(400)).event())
        error = Error.from_event((await read_until(client, "error"))[-1])
        assert error.code == "audio-format" and "channel" in error.text
        await asyncio.sleep(0.2)
    assert len(fake_flux.streams) <= 1 and all(s.closed for s in fake_flux.streams)  # the command's stream is gone
    refused = [r.getMessage() for r in caplog.records if "Refused a command" in r.getMessage()]
    assert len(refused) == 2 and all("127.0.0.1" in line and "audio-format" in line for line in refused)


async def test_a_bad_chunk_mid_command_is_one_error_and_the_rest_is_discarded_until_audio_stop(
    wyoming_server: WyomingServer, fake_flux: FakeFlux
) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        pcm = load_wav(KITCHEN)
        for chunk in list(chunks(pcm))[:20]:
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=99, audio=bytes(400)).event())
        error = Error.from_event((await read_until(client, "error"))[-1])
        assert error.code == "audio-format"
        for chunk in list(chunks(pcm))[20:60]:  # good audio again: still the failed command's, not a new one
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=chunk).event())
        await client.write_event(AudioStop().event())
        await client.write_event(Describe().event())  # whatever comes before the Info is the command's
        later = await read_until(client, "info")
    assert [event.type for event in later] == ["info"]  # no second Error, no Transcript after the Error
    assert len(fake_flux.streams) <= 1  # no second Flux stream for the discarded audio


async def test_unknown_events_are_ignored(wyoming_server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(Event(type="something-new", data={"x": 1}))
        await client.write_event(Describe().event())
        events = await read_until(client, "info")
    assert [e.type for e in events] == ["info"]


async def test_client_end_of_speech_mode_waits_for_audio_stop(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    config = dataclasses.replace(session_config, end_on_flux_eot=False)
    server = WyomingServer(make_settings(config), "tcp://127.0.0.1:0")
    await server.start()
    try:
        async with AsyncTcpClient("127.0.0.1", port(server)) as client:
            await client.write_event(Describe().event())
            assert Info.from_event((await read_until(client, "info"))[-1]).asr[0].requires_external_vad is True
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for event in audio_events(load_wav(KITCHEN) + silence(1)):
                await client.write_event(event)
            await asyncio.sleep(0.3)
            assert fake_flux.streams[0].events("EndOfTurn")  # Flux ended its turn ...
            await client.write_event(AudioStop().event())  # ... but only AudioStop ends the command
            events = await read_until(client, "transcript")
        assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
    finally:
        await server.stop()
