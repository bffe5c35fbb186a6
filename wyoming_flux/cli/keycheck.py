"""`wyoming-flux check --flux`: prove the key, model and endpoint against Deepgram itself.

One real handshake per API the server would use (Flux's /v2/listen, and Nova-3's /v1/listen on the same host
unless --no-nova), each closed at once (no audio is sent, so nothing is billed). A revoked key, a project out of
credit or a model the key may not use fail here with the same error codes a command would get.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from ..common.bounds import Number, env_default, resolve_environment
from ..deepgram.access import verify_model
from ..deepgram.endpoints import listen_urls
from ..deepgram.errors import FluxError
from ..deepgram.flux import DEFAULT_URL
from ..deepgram.models import FLUX_MODELS, MODEL_EN, MODEL_NOVA, NOVA
from ..turn.request import SessionConfig
from .config import ConfigError, Parser, env, flux_url, named, parse_switch, read_api_key, set_by_environment


async def check_flux(url: str, api_key: str, model: str, timeout: float, nova: bool = True) -> int:
    """Every API the server would use: Flux for a Flux model, and Nova-3 unless it is off."""
    flux_url, nova_url = listen_urls(url)
    models = ([] if model == MODEL_NOVA else [model]) + ([MODEL_NOVA] if nova or model == MODEL_NOVA else [])
    async with aiohttp.ClientSession() as http:
        for name in models:
            api, endpoint = ("Nova-3", nova_url) if FLUX_MODELS[name].api == NOVA else ("Flux", flux_url)
            try:
                request_id = await verify_model(http, url, api_key, name, timeout=timeout)
            except FluxError as err:
                print(f"wyoming-flux check: error ({err.code}): {err} ({api} at {endpoint})", file=sys.stderr)
                return 1
            print(f"ok: {api} accepts this key for {name} at {endpoint} (request {request_id or '-'})")
    return 0


def main(argv: list[str]) -> int:
    parser = Parser(prog="wyoming-flux check --flux", description=__doc__)
    parser.add_argument("--flux", action="store_true", help="check against Flux (this mode)")
    parser.add_argument("--api-key", default=env("DEEPGRAM_API_KEY"), help="Deepgram API key (env DEEPGRAM_API_KEY)")
    parser.add_argument("--api-key-file", default=env("DEEPGRAM_API_KEY_FILE"),
                        help="file holding the key (env DEEPGRAM_API_KEY_FILE)")
    parser.add_argument("--model", choices=sorted(FLUX_MODELS), default=MODEL_EN,
                        help=f"the model the server offers first (default {MODEL_EN})")
    parser.add_argument("--no-nova", action="store_true",
                        default=env_default("WYOMING_FLUX_NOVA", lambda text: not parse_switch(text), False),
                        help="the server will not use Nova-3: do not check /v1/listen (env WYOMING_FLUX_NOVA=0)")
    parser.add_argument("--flux-url", default=env("WYOMING_FLUX_URL", DEFAULT_URL),
                        help="us, eu, au, in, or a ws:// / wss:// URL (env WYOMING_FLUX_URL)")
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
