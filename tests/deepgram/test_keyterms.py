"""Keyterms never cost a command: counted high enough for Deepgram's 500-token limit in every script, and a
handshake Deepgram still refuses for that limit made again without them (and fewer sent from then on)."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux, deepgram_tokens
from wyoming_flux.deepgram.errors import DeepgramError
from wyoming_flux.deepgram.flux import FluxOptions, connect_flux
from wyoming_flux.deepgram.keyterms import KEYTERM_TOKEN_BUDGET, estimate_tokens, refused_for_keyterms, trim_keyterms
from wyoming_flux.deepgram.nova import NovaOptions, connect_nova

TEN = "甲乙丙丁戊己庚辛壬癸"
CHINESE_HOME = [f"客厅{a}{b}号灯" for a in TEN for b in TEN]  # 100 names of 6 characters, no spaces


@pytest.mark.parametrize(("term", "tokens"), [
    ("Kitchen Light", 4), ("Lamp 3", 2), ("客厅灯", 3), ("キッチンの照明", 7), ("ไฟห้องครัว", 10), ("주방 조명", 4),
    ("Küche Decke", 4), ("LED 客厅", 3),
])
def test_scripts_written_without_spaces_count_a_token_a_character(term: str, tokens: int) -> None:
    assert estimate_tokens(term) == tokens
    assert estimate_tokens(term) >= deepgram_tokens(term)  # the fake (as strict as Deepgram) counts no more


def test_a_home_named_in_chinese_is_trimmed_to_the_budget() -> None:
    kept = trim_keyterms(CHINESE_HOME)
    assert 70 <= len(kept) < len(CHINESE_HOME)  # once: all 100, as one token each
    assert sum(deepgram_tokens(term) for term in kept) <= KEYTERM_TOKEN_BUDGET


def test_the_keyterm_limit_is_told_from_other_refusals() -> None:
    said = "Keyterm limit exceeded. The maximum number of tokens across all keyterms is 500"
    assert refused_for_keyterms(400, said)
    assert not refused_for_keyterms(400, "Unknown model: nova-9") and not refused_for_keyterms(401, said)
    assert not refused_for_keyterms(400, None)


async def _open(api: str, url: str, http: aiohttp.ClientSession, keyterms: tuple[str, ...]) -> None:
    """Open a stream on `api` with these keyterms, and close it."""
    if api == "flux":
        socket = await connect_flux(http, url, API_KEY, FluxOptions(model="flux-general-en", keyterms=keyterms))
    else:
        socket = await connect_nova(http, url, API_KEY, NovaOptions(language="en", keyterms=keyterms))
    await socket.close()


@pytest.mark.parametrize("api", ["flux", "nova"])
async def test_a_chinese_home_is_not_refused(fake_flux: FakeFlux, api: str) -> None:
    url = fake_flux.url if api == "flux" else fake_flux.nova_url
    async with aiohttp.ClientSession() as http:
        await _open(api, url, http, tuple(trim_keyterms(CHINESE_HOME)))
    assert fake_flux.streams[-1].query["keyterm"] == trim_keyterms(CHINESE_HOME)


@pytest.mark.parametrize("api", ["flux", "nova"])
async def test_a_refusal_for_the_keyterm_limit_costs_no_command_and_later_ones_send_fewer(
        fake_flux: FakeFlux, api: str, caplog: pytest.LogCaptureFixture) -> None:
    fake_flux.script.keyterm_token_limit = 100  # Deepgram counts more than we do
    url = fake_flux.url if api == "flux" else fake_flux.nova_url
    names = tuple(f"Lamp {i}" for i in range(60))  # 120 tokens by our count, within our budget of 500
    async with aiohttp.ClientSession() as http:
        await _open(api, url, http, names)  # refused, then opened again at once without keyterms
        assert fake_flux.handshakes == 2 and len(fake_flux.streams) == 1
        assert "keyterm" not in fake_flux.streams[0].query
        refused = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(refused) == 1 and "refused 60 keyterms for its token limit" in refused[0].getMessage()
        assert "Keyterm limit exceeded" in refused[0].getMessage()
        await _open(api, url, http, names)  # fewer, at once: one handshake, accepted
    assert fake_flux.handshakes == 3 and len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    sent = fake_flux.streams[1].query["keyterm"]
    assert sent == list(names[: len(sent)]) and sum(estimate_tokens(term) for term in sent) <= 90


async def test_other_refusals_are_not_retried(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DeepgramError) as caught:
            await connect_nova(http, fake_flux.nova_url, API_KEY, NovaOptions(language="xx", keyterms=("Lamp",)))
    assert caught.value.code == "flux-bad-request" and fake_flux.handshakes == 1
