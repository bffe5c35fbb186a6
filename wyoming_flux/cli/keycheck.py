"""`wyoming-flux check --flux`: prove the key, model and endpoint against Deepgram itself.

One real handshake per API the server would use (Flux's /v2/listen, and Nova-3's /v1/listen on the same host
unless --no-nova), each closed at once (no audio is sent, so nothing is billed). A revoked key, a project out of
credit or a model the key may not use fail here with the same error codes a command would get. Then the
languages each model serves, as the host's model list (/v1/models) gives them, or the built-in table.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from ..common.bounds import Number, env_default, resolve_environment
from ..deepgram.access import verify_model
from ..deepgram.catalog import Catalog, fetch_catalog, models_url
from ..deepgram.endpoints import listen_urls
from ..deepgram.errors import DeepgramError
from ..deepgram.endpoints import DEFAULT_URL
from ..deepgram.models import Api, DEEPGRAM_MODELS, MODEL_EN, MODEL_NOVA, multi_only, nova_model
from ..turn.request import SessionConfig
from .config import ConfigError, Parser, env, flux_url, named, parse_switch, read_api_key, set_by_environment


async def check_flux(url: str, api_key: str, model: str, timeout: float, nova: bool = True) -> int:
    """Every API the server would use: Flux for a Flux model, and Nova-3 unless it is off."""
    flux_url, nova_url = listen_urls(url)
    models = ([] if model == MODEL_NOVA else [model]) + ([MODEL_NOVA] if nova or model == MODEL_NOVA else [])
    async with aiohttp.ClientSession() as http:
        for name in models:
            api, endpoint = ("Nova-3", nova_url) if DEEPGRAM_MODELS[name].api == Api.NOVA else ("Flux", flux_url)
            try:
                request_id = await verify_model(http, url, api_key, name, timeout=timeout)
            except DeepgramError as err:
                if err.code == "flux-not-found" and api == "Nova-3" and len(models) > 1:  # a Flux-only host
                    print(f"wyoming-flux check: error ({err.code}): this host serves Flux but not Nova-3 (no "
                          f"{endpoint}); --no-nova offers only {model}'s languages", file=sys.stderr)
                else:
                    print(f"wyoming-flux check: error ({err.code}): {err} ({api} at {endpoint})", file=sys.stderr)
                return 1
            print(f"ok: {api} accepts this key for {name} at {endpoint} (request {request_id or '-'})")
        catalog = await fetch_catalog(http, url, api_key, timeout=timeout)
    for line in language_lines(catalog, models_url(url)):
        print(line)
    return 0


def language_lines(catalog: Catalog | None, address: str) -> list[str]:
    """What the key can use, model by model: the languages the host lists, or the built-in table's."""
    if catalog is None:
        table = DEEPGRAM_MODELS[MODEL_NOVA]
        return [f"languages: {address} gave no model list; the built-in table stands (nova-3: "
                f"{len(table.monolingual)} monolingual codes)"]
    lines = []
    for name in DEEPGRAM_MODELS:
        if not catalog.serves(name):
            lines.append(f"languages of {name}: not listed at {address}")
        elif name == MODEL_NOVA:
            nova = nova_model(catalog.languages[name])
            lines.append(f"languages of {name} (Deepgram's list): {' '.join(nova.monolingual)}; "
                         f"through language=multi: {' '.join(multi_only(nova))}")
        else:
            lines.append(f"languages of {name} (Deepgram's list): {' '.join(catalog.languages[name])}")
    return lines


def main(argv: list[str]) -> int:
    parser = Parser(prog="wyoming-flux check --flux", description=__doc__)
    parser.add_argument("--flux", action="store_true", help="check against Flux (this mode)")
    parser.add_argument("--api-key", default=env("DEEPGRAM_API_KEY"), help="Deepgram API key (env DEEPGRAM_API_KEY)")
    parser.add_argument("--api-key-file", default=env("DEEPGRAM_API_KEY_FILE"),
                        help="file holding the key (env DEEPGRAM_API_KEY_FILE)")
    parser.add_argument("--model", choices=sorted(DEEPGRAM_MODELS), default=MODEL_EN,
                        help=f"the model the server offers first (default {MODEL_EN})")
    parser.add_argument("--no-nova", action="store_true",
                        default=env_default("WYOMING_FLUX_NOVA", lambda text: not parse_switch(text), False),
                        help="the server will not use Nova-3: do not check /v1/listen (env WYOMING_FLUX_NOVA=0)")
    parser.add_argument("--flux-url", default=env("WYOMING_FLUX_URL", DEFAULT_URL),
                        help="global, us, eu, au, in, or a ws:// / wss:// URL (env WYOMING_FLUX_URL)")
    # The server's own bound by default: an endpoint slower than that passes a longer check, then fails every
    # command with flux-timeout.
    bound = SessionConfig.connect_timeout
    parser.add_argument("--timeout", type=Number(float, 0.1, 300), default=bound,
                        help=f"seconds to wait for each handshake (default {bound:g}, the server's own bound)")
    args = parser.parse_args(argv)
    variables = set_by_environment(parser, args)
    try:
        resolve_environment(args)
        key, url = read_api_key(args), flux_url(args.flux_url)
    except (ConfigError, ValueError) as err:
        print(f"wyoming-flux check: error: {named(str(err), variables)}", file=sys.stderr)
        return 2
    return asyncio.run(check_flux(url, key, args.model, args.timeout, nova=not args.no_nova))
