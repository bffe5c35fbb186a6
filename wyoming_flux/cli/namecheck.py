"""`wyoming-flux check --hass-url URL`: prove the Home Assistant address and token the server would use, and
show how many names it would send Flux."""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from ..common.bounds import Number
from ..common.wording import count
from ..server.hass.names import HassAuthError, HassNames, HassProtocolError
from .config import ConfigError, Parser, env, named, read_hass, set_by_environment


async def check_names(url: str, token: str, timeout: float) -> int:
    names = HassNames(url, token, timeout=timeout)
    try:
        areas, entities, terms = await names.fetch_once()
    except HassAuthError as err:
        print(f"wyoming-flux check: Home Assistant at {names.url} {err}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError, TimeoutError, HassProtocolError, ValueError) as err:
        print(f"wyoming-flux check: Home Assistant at {names.url} is unreachable: {str(err) or type(err).__name__}",
              file=sys.stderr)
        return 1
    print(f"ok: Home Assistant at {names.url}: {count(areas, 'area')}, {count(entities, 'entity', 'entities')} "
          f"exposed to Assist -> {count(len(terms), 'keyterm')}")
    return 0


def main(argv: list[str]) -> int:
    parser = Parser(prog="wyoming-flux check --hass-url", description=__doc__)
    parser.add_argument("--hass-url", required=True, help="Home Assistant's address, e.g. http://homeassistant.local:8123")
    parser.add_argument("--hass-token-file", default=env("WYOMING_FLUX_HASS_TOKEN_FILE"),
                        help="file holding a long-lived access token (or the token in HASS_TOKEN)")
    parser.add_argument("--timeout", type=Number(float, 0.1, 300), default=10.0, help="seconds to wait for each step")
    args = parser.parse_args(argv)
    try:
        url, token = read_hass(args)
    except ConfigError as err:
        print(f"wyoming-flux check: error: {named(str(err), set_by_environment(parser, args))}", file=sys.stderr)
        return 2
    assert url is not None
    return asyncio.run(check_names(url, token, args.timeout))
