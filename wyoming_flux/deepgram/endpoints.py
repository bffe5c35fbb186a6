"""What this process has learnt about Deepgram endpoints while running: which ones refuse ForceEndTurn, and
which ones counted more keyterm tokens than we did.

Older and self-hosted deployments answer ForceEndTurn with a fatal UNPARSABLE_CLIENT_MESSAGE. Once one has,
its turns are ended with trailing silence instead, for as long as the process runs. An endpoint that refused a
handshake for its keyterm limit gets fewer keyterms from then on (a lower budget by our count), so that one
refusal is not paid again by every command. One entry per configured URL, so both stay as small as the
configuration.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from .keyterms import KEYTERM_TOKEN_BUDGET

_LOGGER = logging.getLogger(__name__)

DEFAULT_URL = "wss://api.deepgram.com/v2/listen"
US_URL = "wss://api.us.deepgram.com/v2/listen"  # US data residency (generally available since 2026-11-23)
EU_URL = "wss://api.eu.deepgram.com/v2/listen"
AU_URL = "wss://api.au.deepgram.com/v2/listen"
IN_URL = "wss://api.in.deepgram.com/v2/listen"
# Deepgram's hosts: the global one (the default) and its data-residency regions; each serves Flux and Nova-3,
# with the same keys and prices.
REGIONS: dict[str, str] = {"global": DEFAULT_URL, "us": US_URL, "eu": EU_URL, "au": AU_URL, "in": IN_URL}

_NO_FORCE_END: set[str] = set()
_KEYTERM_BUDGETS: dict[str, int] = {}


def _key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def supports_force_end(url: str) -> bool:
    return _key(url) not in _NO_FORCE_END


def mark_no_force_end(url: str) -> None:
    key = _key(url)
    if key not in _NO_FORCE_END:
        _NO_FORCE_END.add(key)
        _LOGGER.warning("The Flux endpoint %s does not accept ForceEndTurn; its turns will be ended with trailing "
                        "silence from now on", key)


def keyterm_budget(url: str) -> int:
    """The keyterm tokens (by our count) to send this endpoint."""
    return _KEYTERM_BUDGETS.get(_key(url), KEYTERM_TOKEN_BUDGET)


def lower_keyterm_budget(url: str, refused: int) -> int:
    """The endpoint refused keyterms we counted as `refused` tokens: send it a quarter fewer from now on."""
    budget = min(keyterm_budget(url), refused * 3 // 4)
    _KEYTERM_BUDGETS[_key(url)] = budget
    return budget


def forget_endpoints() -> None:
    """Start afresh (a reconfigured endpoint may have been upgraded; tests start each case clean)."""
    _NO_FORCE_END.clear()
    _KEYTERM_BUDGETS.clear()


def check_deepgram_url(url: str) -> None:
    """ValueError with the reason (a short phrase) if no Deepgram API can be reached at `url`: it must be a
    ws:// or wss:// URL with a host and, if it names one, a port that is a number from 1 to 65535. Checked when
    the URL is configured, so a bad one is refused there rather than at every command."""
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ValueError("spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as err:  # "Invalid IPv6 URL"
        reason = str(err)
        raise ValueError(f"not a URL: {reason[:1].lower()}{reason[1:]}") from None
    if parts.scheme not in ("ws", "wss"):
        raise ValueError("not ws:// or wss://")
    if not parts.hostname:
        raise ValueError("no host")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0:
        raise ValueError("the port is not a number from 1 to 65535")


def listen_urls(url: str) -> tuple[str, str]:
    """(Flux's /v2/listen, Nova-3's /v1/listen) on the host of `url`: a region's URL, a full /v2/listen (or
    /v1/listen) URL, or a bare ws(s)://HOST[:PORT] of a self-hosted deployment. Both APIs hang off one host."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    for suffix in ("/v2/listen", "/v1/listen"):
        if path.endswith(suffix):
            base = f"{parts.scheme}://{parts.netloc}{path[: -len(suffix)]}"
            return f"{base}/v2/listen{query}", f"{base}/v1/listen{query}"
    base = f"{parts.scheme}://{parts.netloc}{path}"
    # Another path is a prefix (a proxy's): Flux keeps the URL as given, as before.
    return (f"{base}/v2/listen{query}" if not path else url), f"{base}/v1/listen{query}"
