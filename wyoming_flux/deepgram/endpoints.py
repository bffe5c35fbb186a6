"""What this process has learnt about Flux endpoints while running: which ones refuse ForceEndTurn.

Older and self-hosted deployments answer ForceEndTurn with a fatal UNPARSABLE_CLIENT_MESSAGE. Once one has,
its turns are ended with trailing silence instead, for as long as the process runs (one entry per configured
URL, so the set stays as small as the configuration).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

_LOGGER = logging.getLogger(__name__)

_NO_FORCE_END: set[str] = set()


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


def forget_endpoints() -> None:
    """Start afresh (a reconfigured endpoint may have been upgraded; tests start each case clean)."""
    _NO_FORCE_END.clear()


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
