"""Checking that a key may use a model: one real handshake on the API that serves it (no audio, nothing billed)."""

from __future__ import annotations

import aiohttp

from .endpoints import listen_urls
from .flux import verify_flux_access
from .models import Api, DEEPGRAM_MODELS
from .nova import verify_nova_access


async def verify_model(http: aiohttp.ClientSession, url: str, api_key: str, model: str, *,
                       timeout: float = 10.0) -> str | None:
    """Flux's /v2/listen for a Flux model, Nova-3's /v1/listen on the same host for nova-3; Deepgram's request
    id, or the same typed FluxErrors as a command's connect."""
    flux_url, nova_url = listen_urls(url)
    if DEEPGRAM_MODELS[model].api == Api.NOVA:
        return await verify_nova_access(http, nova_url, api_key, timeout=timeout)
    return await verify_flux_access(http, flux_url, api_key, model, timeout=timeout)
