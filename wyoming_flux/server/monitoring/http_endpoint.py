"""A small HTTP/1.1 server for a few GET routes (the metrics port), with every resource a client can hold
bounded: a connection cap and each address's share of it, a deadline for each request's head, an idle timeout
between requests, a bound on unread answers. Nothing a client sends is buffered past one read, and no route
takes a body, so a slow or hostile client (slowloris, a pipeline that never reads its answers) costs one small
buffer and one timer until its deadline closes it.

Written here rather than on aiohttp's web server, which has no deadline for a request's head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..ratelog import RateLimitedLog

_LOGGER = logging.getLogger(__name__)


class MetricsListenError(Exception):
    """The metrics endpoint could not listen: one line for the user."""

Answer = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Answer]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"
REQUESTS_PER_TURN = 32  # then let the event loop run others: a pipeline cannot hold the loop


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 16  # a scraper or two and a few curls; more are answered 503 and closed
    peer_share: int = 8  # connections one client address may hold, so one client cannot take them all
    head_timeout: float = 5.0  # seconds from a request's first byte to the end of its head
    idle_timeout: float = 15.0  # seconds a connection may stay open with no request under way
    send_timeout: float = 10.0  # seconds answers may wait unread above max_queued_bytes
    max_head_bytes: int = 8192  # request line and headers
    max_queued_bytes: int = 64 * 1024  # answers a client has not read; its next requests wait until it reads


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

    def admit(self, new: _HttpConnection) -> bool:
        """Take `new` in, closing the connection idle the longest if a bound is reached: among the address's
        own when it holds its share, else among all. False (refuse it) when every candidate is busy."""
        limits = self.limits
        own = [c for c in self.connections if c.peer == new.peer]
        if len(own) >= limits.peer_share:
            candidates, bound = own, f"{new.peer} holds {len(own)}"
        elif len(self.connections) >= limits.max_connections:
            candidates, bound = list(self.connections), f"{len(self.connections)} are open"
        else:
            self.connections.add(new)
            return True
        idle = [c for c in candidates if c.idle]
        if not idle:
            self.log.warning("refused metrics connections", "Refused a metrics connection: %s, none idle", bound)
            return False
        oldest = min(idle, key=lambda c: c.last_active)
        oldest.close()
        self.connections.discard(oldest)
        self.connections.add(new)
        return True


class _HttpConnection(asyncio.Protocol):
    def __init__(self, endpoint: HttpEndpoint) -> None:
        self._endpoint = endpoint
        self._limits = endpoint.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._pos = 0  # where the unanswered requests in _buffer start
        self._head_started = False  # part of a request head has come, and its deadline runs
        self._write_paused = False  # answers wait unread above max_queued_bytes: requests wait too
        self._yielding = False
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self.peer: object = None  # the client's address (host only: its ports are all one client)
        self.last_active = self._loop.time()

    @property
    def idle(self) -> bool:
        """Connected with no request under way and no answer unsent: closing it loses nothing."""
        transport = self._transport
        return (not self._closing and transport is not None and self._pos == len(self._buffer)
                and transport.get_write_buffer_size() == 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else peer
        transport.set_write_buffer_limits(high=self._limits.max_queued_bytes)
        if not self._endpoint.admit(self):
            self._answer((503, _TEXT, b"too many connections\n"), keep_alive=False)
            return
        self._deadline(self._limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        # What is left of the last read and this one: one copy per read, never one per request.
        self._buffer = self._buffer[self._pos:] + data if self._pos < len(self._buffer) else data
        self._pos = 0
        self._pump()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        # The client does not read: no more of its requests are read or answered, and what is queued must
        # start going out within send_timeout. Requests already buffered do not re-arm this deadline.
        self._write_paused = True
        self._pause_reading()
        self._deadline(self._limits.send_timeout)

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self._closing:  # the client reads again: the usual deadlines hold
            self._head_started = self._pos < len(self._buffer)
            self._deadline(self._limits.head_timeout if self._head_started else self._limits.idle_timeout)
            self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._endpoint.connections.discard(self)

    def close(self) -> None:
        """Close an idle connection (nothing to send): a keep-alive client opens another when it needs one."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _deadline(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(seconds, self.abort)

    def _pump(self) -> None:
        """Answer the complete requests in the buffer, a fair share per turn of the loop, while the client reads
        its answers; then wait for the rest of a head, or the next request."""
        budget = REQUESTS_PER_TURN
        while not self._closing and not self._write_paused and not self._yielding:
            end = self._buffer.find(b"\r\n\r\n", self._pos)
            if end < 0:
                break
            if budget == 0:
                self._yielding = True
                self._pause_reading()
                self._loop.call_soon(self._resume_after_yield)
                return
            budget -= 1
            head, self._pos = self._buffer[self._pos:end], end + 4
            self._head_started = False
            self.last_active = self._loop.time()
            self._request(head)
        if self._closing or self._write_paused or self._yielding:
            return  # pause_writing armed the send deadline: nothing here may re-arm it
        if self._pos == len(self._buffer):
            self._buffer, self._pos = b"", 0
            if budget < REQUESTS_PER_TURN or self._head_started:
                self._head_started = False
                self._deadline(self._limits.idle_timeout)
        elif len(self._buffer) - self._pos > self._limits.max_head_bytes:
            self._answer((431, _TEXT, b"request head too large\n"), keep_alive=False)
            return
        elif not self._head_started:  # a request starts: its head has a deadline, however slowly it comes
            self._head_started = True
            self._deadline(self._limits.head_timeout)
        if self._transport is not None and not self._transport.is_reading():
            self._transport.resume_reading()

    def _resume_after_yield(self) -> None:
        self._yielding = False
        self._pump()

    def _pause_reading(self) -> None:
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

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
        if self._transport.is_closing():
            return
        self._transport.write(b"".join((
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n".encode(),
            b"" if head_only else body)))
        if not keep_alive:
            self._closing = True
            self._buffer, self._pos = b"", 0
            self._transport.close()  # what is queued still goes out; the send deadline aborts a client that won't read
            self._deadline(self._limits.send_timeout)
