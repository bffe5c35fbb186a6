"""Configuration readers shared by the server command and the check commands: environment variables, secrets
from files, the Flux URL, the Home Assistant address. One line per problem (ConfigError), never a traceback,
naming what the user set: the flag, or the environment variable it came from."""

from __future__ import annotations

import argparse
import os
import re
import stat
from typing import Any, NoReturn

from ..common.bounds import Number, env_default
from ..deepgram.endpoints import REGIONS, check_deepgram_url, listen_urls
from ..server.hass.names import websocket_url


MAX_SECRET_BYTES = 4096  # a Deepgram key is 40 characters, a Home Assistant token a few hundred


class ConfigError(Exception):
    """A configuration problem, reported as one line."""


class FromVariable(str):
    """A flag's value taken from its environment variable, which an error about it names instead of the flag."""

    variable: str

    def __new__(cls, text: str, variable: str) -> FromVariable:
        value = super().__new__(cls, text)
        value.variable = variable
        return value


def env(name: str, default: str | None = None) -> str | None:
    """The default of a flag whose environment variable may set it (remembered, for errors: see `named`)."""
    value = os.environ.get(name)
    return default if value is None else FromVariable(value, name)


def set_by_environment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Each flag whose value came from its environment variable -> the variable. Taken before the values are
    resolved (resolve_environment), for `named`."""
    found = {}
    for action in parser._actions:  # argparse has no public list of its actions
        variable = getattr(getattr(args, action.dest, None), "variable", None)  # FromVariable, FromEnvironment
        if action.option_strings and isinstance(variable, str):
            found[action.option_strings[0]] = variable
    return found


def named(message: str, variables: dict[str, str]) -> str:
    """An error's line naming what the user set: the variable instead of the flag where the value came from
    the environment (DEEPGRAM_API_KEY_FILE, not --api-key-file)."""
    for flag, variable in variables.items():
        message = re.sub(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", variable, message)
    return message


def env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def numeric(option: str, kind: type[int] | type[float], variable: str, default: float | None = None) -> dict[str, Any]:
    """type= and default= of the flag of a ranged option (bounds.py): a bad value from the flag or from its
    environment variable is one line naming the flag or the variable, and the range."""
    parse = Number.option(option, kind)
    return {"type": parse, "default": env_default(variable, parse, default)}


_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def parse_switch(text: str) -> bool:
    """An on/off environment value, in any case; anything else is refused rather than read as on."""
    value = text.strip().lower()
    if value not in _ON + _OFF:
        raise ValueError(f"must be 1, true, yes or on (or 0, false, no, off), not {text}")
    return value in _ON


def switch(variable: str) -> dict[str, Any]:
    """action= and default= of an on/off flag that its environment variable may turn on."""
    return {"action": "store_true", "default": env_default(variable, parse_switch, False)}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line ("--flag must be …, not …"), without the usage block."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (--[\w-]+)(?:/\S+)?: must ", r"\1 must ", message)
        self.exit(2, f"{self.prog}: error: {message}\n")


def read_small_file(path: str, limit: int = MAX_SECRET_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; OSError, or ValueError with the reason, for
    anything else. Never reads more than that (/dev/zero), and never blocks (a FIFO is opened non-blocking,
    then refused)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes, far more than a key or token")
    return data


def read_secret(path: str | None, value: str | None, flag: str, source: str) -> str:
    """A secret from its file (e.g. a Docker secret) when one is named, else the value given (from `source`);
    stripped. A key or token is one line of printable characters: anything else would be refused by the HTTP
    client at the first command (a header may not hold a line break), so it is refused here, in one line."""
    if path:
        try:
            secret = read_small_file(path).decode("utf-8").strip()
        except OSError as err:
            raise ConfigError(f"cannot read {flag} {path}: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"cannot read {flag} {path}: not text") from None
        except ValueError as err:
            raise ConfigError(f"cannot read {flag} {path}: {err}") from None
        if not secret:
            raise ConfigError(f"{flag} {path} is empty")
        where = f"{flag} {path}"
    else:
        secret, where = (value or "").strip(), source
    if any(not char.isprintable() or char.isspace() for char in secret):
        raise ConfigError(f"{where} must hold one line without spaces or control characters (the key or token "
                          "alone)")
    return secret


def read_api_key(args: argparse.Namespace) -> str:
    key = read_secret(args.api_key_file, args.api_key, "--api-key-file", "--api-key")  # or its variable: `named`
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
    token = read_secret(args.hass_token_file, env("HASS_TOKEN"), "--hass-token-file", "HASS_TOKEN")
    if not token:
        raise ConfigError("--hass-url needs a long-lived access token: --hass-token-file or HASS_TOKEN")
    return args.hass_url, token


def flux_url(value: str) -> str:
    """A Deepgram host's name (global, us, eu, au, in) or a ws:// / wss:// URL (self-hosted): a full /v2/listen
    URL or just ws(s)://HOST[:PORT], whose /v2/listen (Flux) and /v1/listen (Nova-3) are then used."""
    url = REGIONS.get(value.strip().lower(), value)
    try:
        check_deepgram_url(url)
    except ValueError as err:
        raise ConfigError(f"--flux-url must be {', '.join(REGIONS)} or a ws:// or wss:// URL, not {value} "
                          f"({err})") from None
    return listen_urls(url)[0]
