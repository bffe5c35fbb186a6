"""What Flux (/v2/listen) and Nova-3 (/v1/listen) share: the handshake, its failures, and one open socket.

Both APIs open the same way (a WebSocket GET with `Authorization: Token KEY`, refusals as HTTP statuses with a
`dg-error` header) and close the same way (a close frame whose reason carries codes like NET-0001), so both
clients open and read their sockets here, and map failures through the one table in errors.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

from .endpoints import keyterm_budget, lower_keyterm_budget
from .errors import DeepgramError, DeepgramStreamError, DeepgramTimeoutError, DeepgramUnavailableError, error_for_status
from .keyterms import estimate_tokens, refused_for_keyterms, trim_keyterms

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnknownMessage:
    """A message of a type this client does not know (the APIs grow): logged and ignored, never an error."""

    type: str
    raw: str

M = TypeVar("M")


class DeepgramSocket(Generic[M]):
    """One open stream: send audio and JSON control messages; receive typed messages until it closes."""

    service = "Deepgram"

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, request_id: str | None,
                 parse: Callable[[str], M]) -> None:
        self._ws = ws
        self._parse = parse
        self.request_id = request_id
        self.close_reason = ""  # the close frame's payload (Deepgram puts codes like NET-0001 there)

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def send_audio(self, frame: bytes) -> None:
        if frame:  # an empty binary frame is an error (v2) or a close request (v1)
            try:  # not through _send: one coroutine less for every 80 ms frame
                await self._ws.send_bytes(frame)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as err:
                raise self._send_failed(err) from None

    async def close_stream(self) -> None:
        await self._send(self._ws.send_str('{"type":"CloseStream"}'))

    async def ping(self) -> None:
        """A WebSocket ping (v2 has no KeepAlive message)."""
        await self._send(self._ws.ping())

    async def _send(self, sending: Any) -> None:
        try:
            await sending
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as err:
            raise self._send_failed(err) from None

    def _send_failed(self, err: BaseException) -> DeepgramStreamError:
        return DeepgramStreamError(f"the {self.service} stream closed while sending: {type(err).__name__}")

    async def receive(self) -> M | None:
        """The next message, or None once the stream has closed normally. Raises DeepgramStreamError if it broke."""
        while True:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                return self._parse(msg.data)
            if msg.type == aiohttp.WSMsgType.BINARY:
                _LOGGER.debug("Ignoring a binary message from %s", self.service)
                continue
            if msg.type == aiohttp.WSMsgType.ERROR:
                raise DeepgramStreamError(f"the {self.service} connection failed: {type(msg.data).__name__}")
            if msg.type == aiohttp.WSMsgType.CLOSE and isinstance(msg.extra, str):
                self.close_reason = msg.extra[:200]
            return None  # CLOSE / CLOSING / CLOSED

    async def close(self) -> None:
        await self._ws.close()


async def open_stream(
    http: aiohttp.ClientSession,
    url: str,
    api_key: str,
    params: list[tuple[str, str]],
    *,
    timeout: float,
    service: str,
) -> tuple[aiohttp.ClientWebSocketResponse, str | None]:
    """The handshake. Returns the socket and Deepgram's request id; raises a DeepgramError subclass within `timeout`.

    Keyterms help a command but must never cost it: they are cut to what the endpoint has accepted before, and
    a handshake Deepgram still refuses for its keyterm limit is made again at once without them."""
    params = _fit_keyterms(url, params)
    try:
        async with asyncio.timeout(timeout):
            try:
                ws = await _handshake(http, url, api_key, params, service)
            except DeepgramError as err:
                if not _refused_keyterms(url, params, err, service):
                    raise
                ws = await _handshake(http, url, api_key, [p for p in params if p[0] != "keyterm"], service)
    except TimeoutError:
        raise DeepgramTimeoutError(f"no answer from {service} within {timeout:g} s") from None
    response = getattr(ws, "_response", None)  # aiohttp keeps the handshake response here
    request_id = response.headers.get("dg-request-id") if response is not None else None
    return ws, request_id


async def _handshake(http: aiohttp.ClientSession, url: str, api_key: str, params: list[tuple[str, str]],
                     service: str) -> aiohttp.ClientWebSocketResponse:
    try:
        return await http.ws_connect(
            url,
            params=params,
            headers={"Authorization": f"Token {api_key}"},
            autoping=True,
            max_msg_size=4 * 1024 * 1024,
        )
    except aiohttp.WSServerHandshakeError as err:
        headers: Mapping[str, str] = err.headers or {}
        raise error_for_status(err.status, headers.get("dg-error")) from None
    except TimeoutError:
        raise  # open_stream's bound (aiohttp's own timeouts are TimeoutErrors too)
    except (aiohttp.ClientError, OSError) as err:
        # The exception text may carry the URL but never the key, which only travels in a header.
        raise DeepgramUnavailableError(f"cannot reach {service}: {_describe(err)}") from None


def _refused_keyterms(url: str, params: list[tuple[str, str]], err: DeepgramError, service: str) -> bool:
    """Deepgram refused this query's keyterms for its limit: say so once, and send that endpoint fewer from now."""
    terms = [value for name, value in params if name == "keyterm"]
    if not terms or not refused_for_keyterms(err.status, err.dg_error):
        return False
    budget = lower_keyterm_budget(url, sum(estimate_tokens(term) for term in terms))
    _LOGGER.warning("%s refused %d keyterms for its token limit (%s); this command goes on without them, and "
                    "later ones send up to %d tokens of them", service, len(terms), err.dg_error, budget)
    return True


def _fit_keyterms(url: str, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query with its keyterms cut to the budget this endpoint has shown it accepts (unchanged if within)."""
    terms = [value for name, value in params if name == "keyterm"]
    budget = keyterm_budget(url)
    if sum(estimate_tokens(term) for term in terms) <= budget:
        return params
    return [p for p in params if p[0] != "keyterm"] + [("keyterm", term) for term in trim_keyterms(terms, budget)]


def _describe(err: BaseException) -> str:
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"{err.host}:{err.port}: {err.os_error.strerror or type(err.os_error).__name__}"
    return type(err).__name__ + (f" ({err})" if str(err) else "")
