"""The Wyoming server on Nova-3: a command's language picks the model, /v1/listen ends it on Deepgram's
endpointing while the client still streams, AudioStop finalizes it, and a language nobody serves is an Error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, load_wav, silence
from tests.server.test_server import stream_until
from tests.wyoming_io import audio_events, port, read_until
from wyoming_flux.deepgram.models import DEEPGRAM_MODELS, MODEL_EN, MODEL_MULTI, MODEL_NOVA
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.state import MAX_TEXT_CHARS
from wyoming_flux.turn.session import SessionConfig

POLISH = "pl_wlacz_swiatlo_w_kuchni"
SWEDISH = "sv_tand_lampan_i_koket"
KITCHEN = "turn_on_the_kitchen_light"


async def serving(config: SessionConfig, *models: str) -> WyomingServer:
    server = WyomingServer(make_settings(config, *models), "tcp://127.0.0.1:0")
    await server.start()
    return server


@pytest.fixture
async def server(session_config: SessionConfig) -> AsyncIterator[WyomingServer]:
    """What `wyoming-flux` offers by default: Flux English, and Nova-3 for the other languages."""
    running = await serving(session_config, MODEL_EN, MODEL_NOVA)
    yield running
    await running.stop()


async def transcribe(server: WyomingServer, language: str | None, pcm: bytes, *, stop: bool = False) -> tuple[list[Event], int]:
    """One command in `language`; the events up to the answer and the bytes streamed before it came. With
    `stop`, AudioStop follows the audio at once (before Deepgram's endpoint)."""
    async with AsyncTcpClient("127.0.0.1", port(server)) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        answered: asyncio.Future[list[Event]] = asyncio.ensure_future(read_until(client, "transcript", 15))
        if stop:
            for event in audio_events(pcm):
                await client.write_event(event)
            sent = len(pcm)
            await client.write_event(AudioStop().event())
        else:
            sent = await stream_until(client, pcm, answered)
        events = await answered
        if not stop:
            await client.write_event(AudioStop().event())
        return events, sent


@pytest.mark.parametrize("fixture", [POLISH, SWEDISH])
async def test_a_polish_command_is_answered_on_speech_final_while_the_client_streams(
        server: WyomingServer, fake_flux: FakeFlux, fixture: str) -> None:
    fake_flux.script.transcripts = [fixture_text(fixture)]
    language = fixture[:2]
    pcm = load_wav(fixture) + silence(5)
    events, sent = await transcribe(server, language, pcm)
    transcript = Transcript.from_event(events[-1])
    assert (transcript.text, transcript.language) == (fixture_text(fixture), language)
    assert sent < len(pcm) - 4 * 32000  # answered well inside the 5 s of silence, the client still streaming
    chunks = "".join(TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type))
    assert chunks == transcript.text  # transcript-chunk deltas add up to the text, as with Flux
    (stream,) = fake_flux.streams
    assert (stream.query["model"], stream.query["language"]) == (["nova-3"], [language])
    assert any(m.get("speech_final") for m in stream.sent)


async def test_audio_stop_before_the_endpoint_gets_the_whole_text_by_finalize(server: WyomingServer,
                                                                              fake_flux: FakeFlux) -> None:
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    events, _ = await transcribe(server, "pl-PL", load_wav(POLISH)[: int(2.2 * 32000)], stop=True)
    assert Transcript.from_event(events[-1]).text == fixture_text(POLISH)
    (stream,) = fake_flux.streams
    assert stream.query["language"] == ["pl"] and '{"type":"Finalize"}' in stream.client_messages
    assert not any(m.get("speech_final") for m in stream.sent)


@pytest.mark.parametrize("mode", ["duplicated_finals", "swapped_finals"])
async def test_repeated_or_swapped_segments_make_the_command_once_and_in_order(server: WyomingServer,
                                                                              fake_flux: FakeFlux, mode: str) -> None:
    """Each word its own is_final segment, sent twice ("włącz włącz światło światło …") or pairwise swapped
    ("światło włącz kuchni w")."""
    fake_flux.script.transcripts, fake_flux.script.nova_mode = [fixture_text(POLISH)], mode
    events, _ = await transcribe(server, "pl", load_wav(POLISH) + silence(3))
    assert Transcript.from_event(events[-1]).text == fixture_text(POLISH)
    finals = [m for m in fake_flux.streams[-1].sent if m.get("is_final") and m["channel"]["alternatives"][0]["words"]]
    starts = [m["start"] for m in finals]
    assert starts != sorted(set(starts))  # the segments did come twice, or out of order


@pytest.mark.parametrize("mode", ["tiny_finals", "huge_finals"])
async def test_a_runaway_peer_gets_a_bounded_transcript(server: WyomingServer, fake_flux: FakeFlux, mode: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Segments without end: 1,000 one-word segments per audio second, or a 1 MiB one every 0.2 s (the
    client got a 122-million-character Transcript). The text stops at the bound, said once in the log."""
    caplog.set_level(logging.WARNING)
    fake_flux.script.nova_mode = mode
    events, _ = await transcribe(server, "pl", load_wav(POLISH) + silence(1), stop=True)
    text = Transcript.from_event(events[-1]).text
    assert MAX_TEXT_CHARS - 10 <= len(text) <= MAX_TEXT_CHARS and set(text.split()) == {"a" if mode == "tiny_finals" else "light"}
    assert sum("characters, far more than a voice command" in r.getMessage() for r in caplog.records) == 1


async def test_english_still_goes_to_flux(server: WyomingServer, fake_flux: FakeFlux) -> None:
    events, _ = await transcribe(server, "en-GB", load_wav(KITCHEN) + silence(3))
    assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
    assert fake_flux.streams[0].query["model"] == [MODEL_EN]


async def test_a_language_without_a_monolingual_model_goes_to_multi_with_a_hint(server: WyomingServer,
                                                                                fake_flux: FakeFlux) -> None:
    fake_flux.script.transcripts, fake_flux.script.languages = ["مرحبا"], ["ar"]
    events, _ = await transcribe(server, "ar", load_wav(KITCHEN) + silence(3))
    assert Transcript.from_event(events[-1]).text == "مرحبا"
    query = fake_flux.streams[0].query
    assert (query["language"], query["language_hint"]) == (["multi"], ["ar"])


async def test_info_lists_every_language_the_offered_models_speak(server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(server)) as client:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info"))[-1])
    models = {m.name: m.languages for m in info.asr[0].models}
    assert set(models) == {MODEL_EN, MODEL_NOVA}
    bases = {code.split("-")[0] for languages in models.values() for code in languages}
    assert len(bases) >= 40 and {"pl", "sv", "cs", "da", "fi", "uk", "ar", "he"} <= bases


@pytest.mark.parametrize(("models", "language", "flag"), [
    ((MODEL_EN,), "pl", "--no-nova"),  # Nova-3 turned off
    ((MODEL_EN,), "de", MODEL_MULTI),
    ((MODEL_EN, MODEL_NOVA), "tlh", "Deepgram has none"),  # nobody has Klingon
])
async def test_a_language_nobody_serves_gets_a_clear_error_never_wrong_language_text(
        session_config: SessionConfig, fake_flux: FakeFlux, models: tuple[str, ...], language: str,
        flag: str, caplog: pytest.LogCaptureFixture) -> None:
    server = await serving(session_config, *models)
    try:
        events, _ = await transcribe(server, language, load_wav(KITCHEN) + silence(1), stop=True)
        error = Error.from_event(events[-1])
        assert error.code == "unsupported-language" and language in error.text and flag in error.text
        assert fake_flux.handshakes == 0  # nothing was sent to any model
        # The server's log says it too, once, with the client's address (troubleshooting promises a line).
        refused = [r.getMessage() for r in caplog.records if "Refused a command" in r.getMessage()]
        assert len(refused) == 1 and "127.0.0.1" in refused[0] and "unsupported-language" in refused[0]
        # The connection's next command, in English, is served as usual.
        events, _ = await transcribe(server, "en", load_wav(KITCHEN) + silence(3))
        assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
    finally:
        await server.stop()


async def test_nova_alone_serves_every_language_english_too(session_config: SessionConfig,
                                                           fake_flux: FakeFlux) -> None:
    server = await serving(session_config, MODEL_NOVA)
    try:
        events, _ = await transcribe(server, "en-US", load_wav(KITCHEN) + silence(3))
        assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
        assert (fake_flux.streams[0].query["model"], fake_flux.streams[0].query["language"]) == (["nova-3"],
                                                                                              ["en-US"])
    finally:
        await server.stop()


async def test_a_custom_endpoint_serves_both_apis_from_its_host(fake_flux: FakeFlux) -> None:
    from tests.conftest import API_KEY

    config = SessionConfig(url=f"ws://127.0.0.1:{fake_flux.port}/v2/listen", api_key=API_KEY)
    assert config.nova_url == fake_flux.nova_url
    server = await serving(config, MODEL_EN, MODEL_NOVA)
    try:
        fake_flux.script.transcripts = [fixture_text(POLISH)]
        events, _ = await transcribe(server, "pl", load_wav(POLISH) + silence(3))
        assert Transcript.from_event(events[-1]).text == fixture_text(POLISH)
    finally:
        await server.stop()


@pytest.mark.parametrize(("language", "sent"), [
    ("he", "he"), ("fa", "fa"), ("ur", "ur"), ("th-TH", "th-TH"), ("gu", "gu"), ("kk", "kk"), ("zh-HK", "zh-HK"),
    # BCP 47 is case-insensitive: Home Assistant's own codes are lower case (zh-hk, zh-tw)
    ("zh-hk", "zh-HK"), ("ZH-HK", "zh-HK"), ("zh-Hant-HK", "zh-HK"), ("zh-tw", "zh-TW"), ("zh-Hant-TW", "zh-TW"),
    ("pt-br", "pt-BR"), ("kk-kz", "kk-KZ"),
])
async def test_each_language_with_a_monolingual_model_gets_it_spelled_as_deepgram_lists_it(
        server: WyomingServer, fake_flux: FakeFlux, language: str, sent: str) -> None:
    """Nova-3's 2026 monolingual models (Hebrew, Farsi, Urdu, Thai, Gujarati, Kazakh, Cantonese), and any
    spelling of a code: never `multi` when a model of its own exists, never Mandarin for Cantonese."""
    events, _ = await transcribe(server, language, load_wav(KITCHEN) + silence(3))
    assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
    query = fake_flux.streams[0].query
    assert (query["model"], query["language"], "language_hint" in query) == (["nova-3"], [sent], False)


async def test_the_languages_come_from_deepgrams_model_list_and_the_table_stands_without_one(
        session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.extra_nova_languages = ("hy",)  # a language Deepgram lists and the table does not know yet
    server = await serving(session_config, MODEL_EN, MODEL_NOVA)
    try:
        assert "hy" in await offered(server)
        events, _ = await transcribe(server, "hy", load_wav(KITCHEN) + silence(3))
        assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
        assert fake_flux.streams[-1].query["language"] == ["hy"]
    finally:
        await server.stop()
    from wyoming_flux.deepgram.catalog import forget_catalogs

    forget_catalogs()
    fake_flux.script.models_endpoint = False  # a host without the models endpoint: the built-in table
    server = await serving(session_config, MODEL_EN, MODEL_NOVA)
    try:
        languages = await offered(server)
        assert "hy" not in languages and {"he", "kk", "zh-HK", "pl"} <= languages
    finally:
        await server.stop()


async def offered(server: WyomingServer) -> set[str]:
    async with AsyncTcpClient("127.0.0.1", port(server)) as client:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info"))[-1])
    return {code for model in info.asr[0].models for code in model.languages}


@pytest.mark.parametrize("models_endpoint", [True, False])
async def test_a_flux_only_host_is_said_once_at_start_and_info_offers_only_fluxs_languages(
        session_config: SessionConfig, fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture,
        models_endpoint: bool) -> None:
    """A self-hosted Flux without /v1/listen: known from its model list, or, without one, from a handshake."""
    fake_flux.script.nova_served, fake_flux.script.models_endpoint = False, models_endpoint
    server = await serving(session_config, MODEL_EN, MODEL_NOVA)
    try:
        assert await offered(server) == set(DEEPGRAM_MODELS[MODEL_EN].languages)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len([w for w in warnings if "serves Flux but not Nova-3" in w]) == 1, warnings
        events, _ = await transcribe(server, "pl", load_wav(KITCHEN) + silence(1), stop=True)
        error = Error.from_event(events[-1])
        assert error.code == "unsupported-language" and "pl" in error.text
        events, _ = await transcribe(server, "en", load_wav(KITCHEN) + silence(3))
        assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
        assert [s.query["model"] for s in fake_flux.streams] == [["flux-general-en"]]
    finally:
        await server.stop()
    assert not [r for r in caplog.records if "serves Flux but not Nova-3" in r.getMessage()][1:]
