"""Configuration readers shared by the server command and the check commands: environment variables, secrets
from files, the Flux URL, the Home Assistant address. One line per problem (ConfigError), never a traceback."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..deepgram.endpoints import listen_urls
from ..deepgram.flux import REGIONS
from ..server.hass_names import websocket_url


class ConfigError(Exception):
    """A configuration problem, reported as one line."""


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def float_env(name: str, default: float | None = None) -> float | None:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def int_env(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def read_secret(path: str | None, value: str | None, flag: str) -> str:
    """A secret from its file (e.g. a Docker secret) when one is named, else the value given; stripped."""
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"cannot read {flag} {path}: {err.strerror}") from None
    return (value or "").strip()


def read_api_key(args: argparse.Namespace) -> str:
    key = read_secret(args.api_key_file, args.api_key, "--api-key-file")
    if not key:
        raise ConfigError("a Deepgram API key is required: --api-key-file, --api-key or DEEPGRAM_API_KEY")
    return key


def read_hass(args: argparse.Namespace) -> tuple[str | None, str]:
    """--hass-url and its token (from --hass-token-file or HASS_TOKEN; never a flag's value, which ps shows)."""
    if not args.hass_url:
        if args.hass_token_file:
            raise ConfigError("--hass-token-file needs --hass-url")
        return None, ""
    try:
        websocket_url(args.hass_url)
    except ValueError as err:
        raise ConfigError(f"--hass-url: {err}") from None
    token = read_secret(args.hass_token_file, env("HASS_TOKEN"), "--hass-token-file")
    if not token:
        raise ConfigError("--hass-url needs a long-lived access token: --hass-token-file or HASS_TOKEN")
    return args.hass_url, token


def flux_url(value: str) -> str:
    """A Deepgram region's name (us, eu, au, in) or a ws:// / wss:// URL (self-hosted): a full /v2/listen URL
    or just ws(s)://HOST[:PORT], whose /v2/listen (Flux) and /v1/listen (Nova-3) are then used."""
    url = REGIONS.get(value.strip().lower(), value)
    if not url.startswith(("wss://", "ws://")):
        raise ConfigError(f"--flux-url must be us, eu, au, in or a ws:// or wss:// URL, not {value}")
    return listen_urls(url)[0]
