"""A small HTTP/1.1 server for a few GET routes (the metrics port), with every resource a client can hold
bounded: a connection cap, a deadline for each request's head, an idle timeout between requests, a bound on
unread answers. Nothing a client sends is buffered past one request head, and no route takes a body, so a
slow or hostile client (slowloris) costs one small buffer and one timer until its deadline closes it.

Written here rather than on aiohttp's web server, which has no deadline for a request's head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .ratelog import RateLimitedLog

_LOGGER = logging.getLogger(__name__)

Answer = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Answer]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 16  # a scraper or two and a few curls; more are answered 503 and closed
    head_timeout: float = 5.0  # seconds from a request's first byte to the end of its head
    idle_timeout: float = 15.0  # seconds a connection may stay open with no request under way
    send_timeout: float = 10.0  # seconds an answer may wait for a client that does not read
    max_head_bytes: int = 8192  # request line and headers


class HttpEndpoint:
    """Serves `routes` (path -> answer, computed synchronously) on host:port."""

    def __init__(self, routes: dict[str, Route], host: str, port: int, limits: HttpLimits = HttpLimits()) -> None:
        self.routes, self.host, self.limits = routes, host, limits
        self._port = port
        self._server: asyncio.Server | None = None
        self.connections: set[_HttpConnection] = set()
        self.log = RateLimitedLog(_LOGGER)

    @property
    def port(self) -> int | None:
        sockets = self._server.sockets if self._server is not None else ()
        return int(sockets[0].getsockname()[1]) if sockets else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _HttpConnection(self), self.host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self.connections):
            connection.abort()
        await server.wait_closed()
        self.log.flush(force=True)


class _HttpConnection(asyncio.Protocol):
    def __init__(self, endpoint: HttpEndpoint) -> None:
        self._endpoint = endpoint
        self._limits = endpoint.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        endpoint = self._endpoint
        if len(endpoint.connections) >= self._limits.max_connections:
            endpoint.log.warning("refused metrics connections", "Refused a metrics connection: %d are open",
                                 len(endpoint.connections))
            self._answer((503, _TEXT, b"too many connections\n"), keep_alive=False)
            return
        endpoint.connections.add(self)
        self._deadline(self._limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if not self._buffer:  # a request starts: its head has a deadline, however slowly it comes
            self._deadline(self._limits.head_timeout)
        self._buffer += data
        while not self._closing and (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
            self._request(head)
            if not self._closing:
                self._deadline(self._limits.head_timeout if self._buffer else self._limits.idle_timeout)
        if not self._closing and len(self._buffer) > self._limits.max_head_bytes:
            self._answer((431, _TEXT, b"request head too large\n"), keep_alive=False)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self._deadline(self._limits.send_timeout)  # the client does not read: it has this long to start

    def resume_writing(self) -> None:
        if not self._closing:
            self._deadline(self._limits.head_timeout if self._buffer else self._limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._endpoint.connections.discard(self)

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _deadline(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(seconds, self.abort)

    def _request(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._answer((400, _TEXT, b"bad request\n"), keep_alive=False)
            return
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") or headers.get(b"content-length", b"0") != b"0":
            self._answer((400, _TEXT, b"no route takes a body\n"), keep_alive=False)  # never read, never buffered
            return
        keep_alive = (headers.get(b"connection") != b"close" if version == b"HTTP/1.1"
                      else headers.get(b"connection") == b"keep-alive")
        route = self._endpoint.routes.get(target.split(b"?", 1)[0].decode("latin-1"))
        if method not in (b"GET", b"HEAD"):
            answer: Answer = (405, _TEXT, b"only GET\n")
        elif route is None:
            answer = (404, _TEXT, b"not found\n")
        else:
            answer = route()
        self._answer(answer, keep_alive, head_only=method == b"HEAD")

    def _answer(self, answer: Answer, keep_alive: bool, head_only: bool = False) -> None:
        status, content_type, body = answer
        assert self._transport is not None
        self._transport.write(b"".join((
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n".encode(),
            b"" if head_only else body)))
        if not keep_alive:
            self._closing = True
            self._buffer = b""
            self._transport.close()  # what is queued still goes out; the send deadline aborts a client that won't read
            self._deadline(self._limits.send_timeout)
