"""The Nova-3 client (/v1/listen) against the fake's Nova side: the query, typed messages, Finalize and
CloseStream, and failures mapped through the one error table, as for Flux."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from tests.fake_nova import CLOSE_REASONS
from tests.helpers import fixture_text, load_wav, silence
from wyoming_flux.deepgram.errors import DeepgramError
from wyoming_flux.deepgram.stream import UnknownMessage
from wyoming_flux.deepgram.nova import (
    Metadata,
    NovaOptions,
    Results,
    SpeechStarted,
    UtteranceEnd,
    connect_nova,
    parse_nova_message,
    verify_nova_access,
)

POLISH = "pl_wlacz_swiatlo_w_kuchni"


def test_the_query_asks_for_what_a_voice_command_needs() -> None:
    query = NovaOptions(language="multi", language_hints=("pl",), keyterms=("Kuchnia", "Salon"), tags=("home",),
                        mip_opt_out=True, endpointing_ms=400, utterance_end_ms=1200).query()
    assert ("model", "nova-3") in query and ("language", "multi") in query and ("language_hint", "pl") in query
    assert [v for k, v in query if k == "keyterm"] == ["Kuchnia", "Salon"]
    for pair in [("encoding", "linear16"), ("sample_rate", "16000"), ("interim_results", "true"),
                 ("endpointing", "400"), ("utterance_end_ms", "1200"), ("vad_events", "true"),
                 ("smart_format", "true"), ("mip_opt_out", "true"), ("tag", "home")]:
        assert pair in query
    # a monolingual model takes no hint (Deepgram refuses language_hint without language=multi)
    assert not any(k == "language_hint" for k, _ in NovaOptions(language="pl", language_hints=("pl",)).query())


@pytest.mark.parametrize(("endpointing", "utterance_end"), [(5, 1000), (6000, 1000), (500, 999), (500, 6000)])
def test_out_of_range_endpointing_is_refused_before_any_network_use(endpointing: int, utterance_end: int) -> None:
    with pytest.raises(ValueError, match="must be between"):
        NovaOptions(language="pl", endpointing_ms=endpointing, utterance_end_ms=utterance_end).validate()


def test_messages_parse_to_types_and_unknown_ones_are_kept_aside() -> None:
    results = parse_nova_message('{"type":"Results","start":1.0,"duration":0.5,"is_final":true,"speech_final":true,'
                                 '"channel":{"alternatives":[{"transcript":"cześć","languages":["pl"]}]}}')
    assert results == Results("cześć", True, True, False, 1.0, 0.5, ("pl",)) and results.end == 1.5
    assert parse_nova_message('{"type":"UtteranceEnd","last_word_end":2.5}') == UtteranceEnd(2.5)
    assert parse_nova_message('{"type":"SpeechStarted","timestamp":0.4}') == SpeechStarted(0.4)
    assert parse_nova_message('{"type":"Metadata","request_id":"r","duration":3}') == Metadata("r", 3.0)
    assert isinstance(parse_nova_message('{"type":"SomethingNew"}'), UnknownMessage)
    assert isinstance(parse_nova_message("{not json"), UnknownMessage)
    assert isinstance(parse_nova_message('{"type":"Results","channel":7}'), UnknownMessage)


def test_json_nested_too_deeply_is_one_malformed_message() -> None:
    for text in ("[" * 1_000_000, '{"type":"Results","channel":' + "{\"a\":" * 500_000 + "1" + "}" * 500_001):
        assert parse_nova_message(text) == UnknownMessage("<malformed>", text[:500])


async def _all(socket) -> list[object]:  # type: ignore[no-untyped-def]
    messages = []
    async with asyncio.timeout(5):
        while (message := await socket.receive()) is not None:
            messages.append(message)
    return messages


async def test_a_command_streams_interim_then_speech_final_then_close_stream_brings_metadata(
        fake_flux: FakeFlux) -> None:
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    async with aiohttp.ClientSession() as http:
        socket = await connect_nova(http, fake_flux.nova_url, API_KEY, NovaOptions(language="pl"))
        assert socket.request_id
        pcm = load_wav(POLISH) + silence(1.5)
        for start in range(0, len(pcm), 2560):
            await socket.send_audio(pcm[start : start + 2560])
        await socket.close_stream()
        messages = await _all(socket)
        await socket.close()
    results = [m for m in messages if isinstance(m, Results)]
    assert any(not r.is_final and r.transcript for r in results)  # interim results
    speech_final = [r for r in results if r.speech_final]
    assert [r.transcript for r in speech_final] == [fixture_text(POLISH)]
    assert any(isinstance(m, SpeechStarted) for m in messages) and any(isinstance(m, UtteranceEnd) for m in messages)
    assert isinstance(messages[-1], Metadata)


@pytest.mark.parametrize("buffered", [True, False])
async def test_finalize_answers_only_when_audio_is_buffered(fake_flux: FakeFlux, buffered: bool) -> None:
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    async with aiohttp.ClientSession() as http:
        socket = await connect_nova(http, fake_flux.nova_url, API_KEY, NovaOptions(language="pl"))
        if buffered:
            await socket.send_audio(load_wav(POLISH)[: int(1.5 * 32000)])
        await socket.finalize()
        await socket.close_stream()
        messages = await _all(socket)
        await socket.close()
    finalized = [m for m in messages if isinstance(m, Results) and m.from_finalize]
    assert len(finalized) == (1 if buffered else 0)
    if buffered:
        assert finalized[0].is_final and finalized[0].transcript


@pytest.mark.parametrize(("status", "code"), [(401, "flux-auth"), (402, "flux-no-credit"), (403, "flux-forbidden"),
                                              (429, "flux-rate-limited"), (503, "flux-unavailable")])
async def test_a_refused_handshake_has_the_tables_code(fake_flux: FakeFlux, status: int, code: str) -> None:
    fake_flux.script.handshake_status = status
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DeepgramError) as caught:
            await connect_nova(http, fake_flux.nova_url, API_KEY, NovaOptions(language="pl"))
    assert (caught.value.code, caught.value.status) == (code, status)


async def test_a_bad_key_and_an_unknown_language_are_refused_by_deepgram(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DeepgramError) as caught:
            await verify_nova_access(http, fake_flux.nova_url, "wrong-key")
        assert caught.value.code == "flux-auth"
        with pytest.raises(DeepgramError) as caught:
            await connect_nova(http, fake_flux.nova_url, API_KEY, NovaOptions(language="xx"))
        assert caught.value.code == "flux-bad-request"
        assert await verify_nova_access(http, fake_flux.nova_url, API_KEY)


@pytest.mark.parametrize(("fault", "reason"), [("idle", "NET-0001"), ("internal", "NET-0000"),
                                               ("undecodable", "DATA-0000")])
async def test_in_stream_failures_close_with_codes_the_table_reads(fake_flux: FakeFlux, fault: str,
                                                                   reason: str) -> None:
    from wyoming_flux.deepgram.errors import error_for_stream

    expected = {"NET-0001": "flux-idle-timeout", "NET-0000": "flux-stream", "DATA-0000": "flux-bad-audio"}[reason]
    fake_flux.script.idle_close_after = 0.3
    fake_flux.script.fatal_after = 0.05
    async with aiohttp.ClientSession() as http:
        socket = await connect_nova(http, fake_flux.nova_url, API_KEY, NovaOptions(language="pl"))
        if fault == "internal":
            await socket.send_audio(silence(0.1))
        elif fault == "undecodable":
            await socket.send_audio(b"\x00\x00\x00")  # half a sample
        await _all(socket)
        await socket.close()
    assert socket.close_reason == CLOSE_REASONS[reason]  # Deepgram's sentence, the code inside
    assert error_for_stream(socket.close_reason, "closed").code == expected


@pytest.mark.parametrize("fault", ["400", "404", "408", "503", "slow", "closed port"])
async def test_a_nova_3_failure_keeps_its_code_but_never_says_flux(fake_flux: FakeFlux, fault: str) -> None:
    """The codes stay flux-* (stable for clients); the words say Deepgram or Nova-3, whose failure it is."""
    from wyoming_flux.deepgram.errors import KINDS

    url = fake_flux.nova_url
    if fault == "slow":
        fake_flux.script.handshake_delay = 2.0
    elif fault == "closed port":
        url = "ws://127.0.0.1:9/v1/listen"
    else:
        fake_flux.script.handshake_status = int(fault)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DeepgramError) as caught:
            await connect_nova(http, url, API_KEY, NovaOptions(language="pl"), timeout=0.5)
    assert caught.value.code.startswith("flux-") and "Flux" not in str(caught.value), str(caught.value)
    # Every failure both APIs share says Deepgram; only a Flux control message is Flux's own.
    assert [code for code, kind in KINDS.items() if "Flux" in kind.message] == ["flux-unsupported-message"]
