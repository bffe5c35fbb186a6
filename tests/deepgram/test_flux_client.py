"""The Flux client against the fake Flux server: handshakes, typed errors, messages, options."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from wyoming_flux.deepgram.flux import (
    ConfigureResult,
    Connected,
    DeepgramAuthError,
    FluxBadRequestError,
    FluxForbiddenError,
    FluxRateLimitError,
    DeepgramTimeoutError,
    DeepgramUnavailableError,
    FluxOptions,
    TurnInfo,
    UnknownMessage,
    connect_flux,
    estimate_tokens,
    parse_message,
    trim_keyterms,
)


async def test_connect_receives_connected_and_request_id(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        socket = await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-en"))
        message = await socket.receive()
        assert isinstance(message, Connected) and message.request_id == socket.request_id
        await socket.close_stream()
        assert await socket.receive() is None  # closes without EndOfTurn
        await socket.close()
    assert fake_flux.streams[0].query["encoding"] == ["linear16"]
    assert fake_flux.streams[0].query["sample_rate"] == ["16000"]


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(400, FluxBadRequestError, "flux-bad-request"), (401, DeepgramAuthError, "flux-auth"),
     (403, FluxForbiddenError, "flux-forbidden"), (429, FluxRateLimitError, "flux-rate-limited"),
     (500, DeepgramUnavailableError, "flux-unavailable"), (503, DeepgramUnavailableError, "flux-unavailable")],
)
async def test_handshake_failures_are_typed_with_status_and_dg_error(
    fake_flux: FakeFlux, status: int, error: type, code: str
) -> None:
    fake_flux.script.handshake_status = status
    async with aiohttp.ClientSession() as http:
        with pytest.raises(error) as caught:
            await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-en"))
    assert caught.value.status == status
    assert caught.value.code == code
    assert caught.value.dg_error == f"Injected failure {status}"
    assert f"HTTP {status}" in str(caught.value) and API_KEY not in str(caught.value)


async def test_wrong_key_is_an_auth_error_that_does_not_echo_the_key(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DeepgramAuthError) as caught:
            await connect_flux(http, fake_flux.url, "wrong-key-123", FluxOptions(model="flux-general-en"))
    assert "wrong-key-123" not in str(caught.value)
    assert caught.value.dg_error == "Invalid credentials."


async def test_query_validation_is_enforced_like_flux(fake_flux: FakeFlux) -> None:
    fake_flux.script.forbidden_models = {"flux-general-multi"}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(FluxForbiddenError):
            await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-multi"))
        with pytest.raises(FluxBadRequestError, match="language_hint"):
            await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-en", language_hints=("de",)))
        with pytest.raises(FluxBadRequestError, match="sample_rate"):
            await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-en", sample_rate=22050))


async def test_out_of_range_options_are_refused_before_any_network_use(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        for bad in (FluxOptions(model="m", eot_threshold=0.2), FluxOptions(model="m", eot_timeout_ms=100),
                    FluxOptions(model="m", eot_threshold=0.6, eager_eot_threshold=0.8)):
            with pytest.raises(ValueError):
                await connect_flux(http, fake_flux.url, API_KEY, bad)
    assert fake_flux.handshakes == 0


async def test_unreachable_and_hanging_servers_fail_within_the_bound(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DeepgramUnavailableError, match="cannot reach Flux"):
            await connect_flux(http, "ws://127.0.0.1:9/v2/listen", API_KEY, FluxOptions(model="flux-general-en"))
        fake_flux.script.handshake_delay = 5.0
        with pytest.raises(DeepgramTimeoutError):
            await connect_flux(http, fake_flux.url, API_KEY, FluxOptions(model="flux-general-en"), timeout=0.3)


def test_query_carries_every_option() -> None:
    options = FluxOptions(
        model="flux-general-multi", sample_rate=48000, eot_threshold=0.8, eager_eot_threshold=0.5,
        eot_timeout_ms=3000, keyterms=("Kitchen Light", "Léa"), language_hints=("fr",),
    )
    assert options.query() == [
        ("model", "flux-general-multi"), ("encoding", "linear16"), ("sample_rate", "48000"),
        ("eot_threshold", "0.8"), ("eager_eot_threshold", "0.5"), ("eot_timeout_ms", "3000"),
        ("keyterm", "Kitchen Light"), ("keyterm", "Léa"), ("language_hint", "fr"),
    ]


def test_parse_turn_info_and_tolerate_the_unexpected() -> None:
    info = parse_message(
        '{"type":"TurnInfo","event":"EndOfTurn","turn_index":2,"transcript":"hi there","audio_window_start":0.5,'
        '"audio_window_end":1.9,"end_of_turn_confidence":0.93,"trigger":"model","languages":["de","en"],'
        '"words":[{"word":"hi","confidence":0.9}]}'
    )
    assert isinstance(info, TurnInfo)
    assert (info.event, info.turn_index, info.transcript, info.trigger, info.languages) == (
        "EndOfTurn", 2, "hi there", "model", ("de", "en"))
    assert isinstance(parse_message('{"type":"SomethingNew"}'), UnknownMessage)
    assert parse_message("{not json").type == "<malformed>"  # type: ignore[union-attr]
    assert parse_message("[1,2]").type == "<malformed>"  # type: ignore[union-attr]
    assert isinstance(parse_message('{"type":"TurnInfo","turn_index":"x"}'), UnknownMessage)
    # ConfigureFailure says which request it answers, nothing more (Deepgram's spec): no reason to read
    failure = parse_message('{"type":"ConfigureFailure","request_id":"r-1","sequence_id":4}')
    assert failure == ConfigureResult(False, "r-1", 4)


def test_json_nested_too_deeply_is_one_malformed_message() -> None:
    """A RecursionError escaped the parser: a traceback per command, "unexpected failure: RecursionError"."""
    for text in ("[" * 1_000_000, '{"type":"TurnInfo","words":' + "[" * 1_000_000 + "]" * 1_000_000 + "}"):
        assert parse_message(text).type == "<malformed>"  # type: ignore[union-attr]


def test_keyterms_are_deduplicated_and_trimmed_to_the_token_budget() -> None:
    terms = ["Kitchen Light", "kitchen  light", "", "Léa's Room"] + [f"Lamp number {i}" for i in range(400)]
    kept = trim_keyterms(terms)
    assert kept[:2] == ["Kitchen Light", "Léa's Room"]  # order kept, case-insensitive duplicate dropped
    assert sum(estimate_tokens(t) for t in kept) <= 500
    assert len(kept) < len(terms)
