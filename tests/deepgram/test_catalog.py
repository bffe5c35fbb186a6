"""Languages as Deepgram serves them: Nova-3's 2026 monolingual models, codes in any case (BCP 47), and the
host's own model list (/v1/models), read as Deepgram lists it, with the built-in table where there is none."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from wyoming_flux.deepgram.catalog import fetch_catalog, load_catalog, models_url, served_models
from wyoming_flux.deepgram.models import (
    DEEPGRAM_MODELS,
    MODEL_EN,
    MODEL_MULTI,
    MODEL_NOVA,
    choose_model,
    language_hints,
    nova_language,
    nova_model,
)

NOVA_3 = DEEPGRAM_MODELS[MODEL_NOVA]


@pytest.mark.parametrize("code", ["he", "fa", "ur", "zh-HK", "th", "th-TH", "gu", "gu-IN", "pa", "ne", "kk", "kk-KZ"])
def test_the_2026_nova_3_languages_have_their_monolingual_model(code: str) -> None:
    assert nova_language(code) == (code, ())
    assert choose_model([DEEPGRAM_MODELS[MODEL_EN], NOVA_3], None, code) == NOVA_3


@pytest.mark.parametrize(("code", "canonical"), [
    ("zh-hk", "zh-HK"), ("ZH-HK", "zh-HK"), ("zh_HK", "zh-HK"), ("zh-Hant-HK", "zh-HK"), ("zh-tw", "zh-TW"),
    ("zh-Hant-TW", "zh-TW"), ("zh-cn", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("pt-br", "pt-BR"), ("PT-BR", "pt-BR"),
    ("EN-us", "en-US"), ("nb-no", "no"), ("pl-pl", "pl"), ("TH", "th"),
])
def test_language_codes_are_case_insensitive_and_go_to_deepgram_as_it_spells_them(code: str, canonical: str) -> None:
    assert nova_language(code) == nova_language(canonical) == (canonical, ())
    for name in (MODEL_EN, MODEL_MULTI):
        model = DEEPGRAM_MODELS[name]
        assert model.speaks(code) == model.speaks(canonical)
        assert language_hints(model, code) == language_hints(model, canonical)


def test_cantonese_is_never_sent_to_the_mandarin_model() -> None:
    """A host whose list has Mandarin but not Cantonese: zh-HK goes to language=multi with itself as the hint."""
    mandarin_only = nova_model(["en", "zh", "zh-TW", "zh-Hant"])
    for code in ("zh-HK", "zh-hk", "zh-Hant-HK"):
        assert nova_language(code, mandarin_only) == ("multi", ("zh-HK",))
    assert nova_language("zh-tw", mandarin_only) == ("zh-TW", ())


@pytest.mark.parametrize(("url", "models"), [
    ("wss://api.deepgram.com/v2/listen", "https://api.deepgram.com/v1/models"),
    ("wss://api.us.deepgram.com/v2/listen", "https://api.us.deepgram.com/v1/models"),
    ("ws://10.0.0.5:8080", "http://10.0.0.5:8080/v1/models"),
    ("ws://10.0.0.5:8080/v1/listen?x=1", "http://10.0.0.5:8080/v1/models"),
    ("wss://proxy.example/deepgram/v2/listen", "https://proxy.example/deepgram/v1/models"),
])
def test_the_models_endpoint_is_on_the_host_of_every_kind_of_address(url: str, models: str) -> None:
    assert models_url(url) == models


async def test_the_model_list_is_read_as_deepgram_gives_it(fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        catalog = await fetch_catalog(http, fake_flux.url, API_KEY)
    assert catalog is not None
    assert catalog.languages[MODEL_MULTI] == ("en", "es", "fr", "de", "hi", "ru", "pt", "ja", "it", "nl")
    nova = catalog.languages[MODEL_NOVA]  # nova-3 and nova-3-general records together, streaming ones only
    assert {"en", "en-US", "he", "kk-KZ", "zh-HK", "multi"} <= set(nova) and "hy" not in nova
    live = served_models([DEEPGRAM_MODELS[MODEL_EN], NOVA_3], catalog)
    assert live[0] == DEEPGRAM_MODELS[MODEL_EN] and "multi" not in live[1].monolingual
    assert fake_flux.handshakes == 0  # a GET, no stream


@pytest.mark.parametrize("change", ["no endpoint", "wrong key", "closed port"])
async def test_without_a_model_list_the_built_in_table_stands(fake_flux: FakeFlux, change: str) -> None:
    url, key = fake_flux.url, API_KEY
    if change == "no endpoint":
        fake_flux.script.models_endpoint = False
    elif change == "wrong key":
        key = "not-the-key"
    else:
        url = "ws://127.0.0.1:9/v2/listen"
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        assert await fetch_catalog(http, url, key, timeout=2.0) is None
        assert await load_catalog(http, url, key, timeout=2.0) is None
    assert time.monotonic() - started < 10  # bounded, whatever the host does
    assert served_models([NOVA_3], None) == [NOVA_3]


async def test_the_list_is_asked_for_once_and_kept(fake_flux: FakeFlux) -> None:
    fake_flux.script.extra_nova_languages = ("hy",)
    async with aiohttp.ClientSession() as http:
        first = await load_catalog(http, fake_flux.url, API_KEY)
        fake_flux.script.models_endpoint = False  # gone now: the kept answer stands
        assert await load_catalog(http, fake_flux.url, API_KEY) == first
    assert first is not None and "hy" in first.languages[MODEL_NOVA]
