"""What a Deepgram host serves now: its models endpoint (`GET /v1/models`), read once, bounded, and kept.

Deepgram lists each speech-to-text model with `canonical_name`, `languages` and `streaming`. Nova-3 gains
monolingual languages every few months, so the list a host gives is the truth and models.py's table goes
stale; where the host does not answer (offline, a self-hosted deployment without the endpoint, a refused key,
a slow or odd answer) the table stands. The answer is kept per host for the process, so a server start or a
Home Assistant entry's setup asks once, and a command never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .endpoints import listen_urls
from .errors import DeepgramError
from .models import Api, DEEPGRAM_MODELS, MODEL_NOVA, Model, nova_model
from .nova import verify_nova_access

_LOGGER = logging.getLogger(__name__)

FETCH_TIMEOUT = 3.0  # seconds: a start or a setup never waits longer for the list
MAX_AGE = 3600.0  # seconds an answer is reused before a new start or setup asks again
# Deepgram's canonical names for the models we offer (Nova-3's general model has both spellings).
_OUR_NAMES = {**{name: name for name in DEEPGRAM_MODELS}, "nova-3-general": MODEL_NOVA}


@dataclass(frozen=True)
class Catalog:
    """The streaming speech-to-text models a host lists, by our names, with the language codes it lists."""

    languages: Mapping[str, tuple[str, ...]]

    def serves(self, model: str) -> bool:
        return model in self.languages


_KNOWN: dict[str, tuple[float, Catalog]] = {}


def models_url(url: str) -> str:
    """http(s)://HOST[/prefix]/v1/models for a ws(s) URL on that host (a region's, a full /v2/listen or
    /v1/listen URL, or a self-hosted ws(s)://HOST[:PORT])."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for suffix in ("/v2/listen", "/v1/listen"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, f"{path}/v1/models", "", ""))


def parse_models(body: object) -> Catalog | None:
    """The models we know in a /v1/models answer ({"stt": [{canonical_name, languages, streaming}, ...]}),
    streaming ones only; None when the answer is not that shape."""
    if not isinstance(body, dict) or not isinstance(body.get("stt"), list):
        return None
    found: dict[str, list[str]] = {}
    for record in body["stt"]:
        if not isinstance(record, dict) or record.get("streaming") is not True:
            continue
        name = _OUR_NAMES.get(str(record.get("canonical_name") or record.get("name") or "").lower())
        languages = record.get("languages")
        if name is None or not isinstance(languages, list):
            continue
        found.setdefault(name, []).extend(code for code in languages if isinstance(code, str) and code)
    return Catalog({name: tuple(dict.fromkeys(codes)) for name, codes in found.items() if codes})


async def fetch_catalog(http: aiohttp.ClientSession, url: str, api_key: str, *,
                        timeout: float = FETCH_TIMEOUT) -> Catalog | None:
    """The host's list, or None when it does not give one within `timeout` seconds."""
    address = models_url(url)
    try:
        async with asyncio.timeout(timeout):
            async with http.get(address, headers={"Authorization": f"Token {api_key}"}) as response:
                if response.status != 200:
                    _LOGGER.debug("%s answered HTTP %d: the built-in language table stands", address, response.status)
                    return None
                body = await response.json(content_type=None)
    except Exception as err:  # an optional list: whatever fails (network, resolver, JSON), the table stands
        _LOGGER.debug("%s did not answer (%s): the built-in language table stands", address, type(err).__name__)
        return None
    catalog = parse_models(body)
    if catalog is None:
        _LOGGER.debug("%s answered without a model list: the built-in language table stands", address)
    return catalog


async def load_catalog(http: aiohttp.ClientSession, url: str, api_key: str, *,
                       timeout: float = FETCH_TIMEOUT) -> Catalog | None:
    """The host's list, asked for at most once an hour; an answer that fails keeps the last good one."""
    key = models_url(url)
    kept = _KNOWN.get(key)
    if kept is not None and time.monotonic() - kept[0] < MAX_AGE:
        return kept[1]
    catalog = await fetch_catalog(http, url, api_key, timeout=timeout)
    if catalog is None:
        return kept[1] if kept is not None else None
    _KNOWN[key] = (time.monotonic(), catalog)
    return catalog


def known_catalog(url: str) -> Catalog | None:
    """What the host said when last asked (no network), or None."""
    kept = _KNOWN.get(models_url(url))
    return kept[1] if kept is not None else None


def forget_catalogs() -> None:
    """Start afresh (tests start each case clean: a port the OS hands out again is another fake)."""
    _KNOWN.clear()


def served_models(models: Sequence[Model], catalog: Catalog | None) -> list[Model]:
    """The offered models as the host serves them: Nova-3 with the monolingual codes the host lists (the
    table's without a list, or when the list has no languages for it)."""
    if catalog is None or not catalog.languages.get(MODEL_NOVA):
        return list(models)
    live = nova_model(catalog.languages[MODEL_NOVA])
    return [live if model.api == Api.NOVA else model for model in models]


async def lacks_nova(http: aiohttp.ClientSession, url: str, api_key: str, catalog: Catalog | None, *,
                     timeout: float = FETCH_TIMEOUT) -> bool:
    """The host serves no Nova-3 (a self-hosted Flux-only deployment): its list leaves Nova-3 out, or, with no
    list, its /v1/listen is not there (one handshake, no audio). Any other failure is not an answer: False."""
    if catalog is not None:
        return not catalog.serves(MODEL_NOVA)
    try:
        await verify_nova_access(http, listen_urls(url)[1], api_key, timeout=timeout)
    except DeepgramError as err:
        return err.code == "flux-not-found"
    return False
