"""Warm Flux connections: a socket opened before the command, so its audio skips the ~150 ms handshake.

Each socket serves exactly one command (Flux streams are never shared) and is never returned. Idle sockets
are pinged, read (so pings are answered and a close is noticed at once) and replaced before `max_age`,
since Flux closes a stream that receives no audio after about 10 s (pings do not count).

That costs a handshake every `max_age` seconds and one of the account's concurrent streams, so sockets are
kept only within `window` seconds of the last command (when a follow-up is likely); an idle server makes no
handshakes at all. A refusal a retry cannot fix (bad key, no credit, ...) stops refilling until the next
command; other failures back off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace

import aiohttp

from ..common.tasks import cancel, keep
from .endpoints import keyterm_budget
from .flux import DeepgramError, FluxSocket, FluxOptions, connect_flux
from .keyterms import trim_keyterms

_LOGGER = logging.getLogger(__name__)

PING_SECONDS = 4.0
_CONFIGURE_MAX_KEYTERMS = 100  # Configure takes at most 100 keyterms
MAX_BACKOFF_SECONDS = 60.0


@dataclass
class _Warm:
    socket: FluxSocket
    opened_at: float
    reader: asyncio.Task[None] | None = field(default=None, repr=False)


class WarmPool:
    """Keeps `size` open Flux sockets for `options`; `take()` hands one over or returns None."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, api_key: str, options: FluxOptions,
        *, size: int = 1, max_age: float = 8.0, connect_timeout: float = 3.0, window: float | None = None,
    ) -> None:
        self._http, self._url, self._api_key = http, url, api_key
        self.options = options
        self.size = size
        self.max_age = max_age
        self._connect_timeout = connect_timeout
        self.window = window  # keep sockets this long after a command; None: always
        self._last_use: float | None = None
        self._refused = False  # Flux refused in a way only the user can fix: wait for the next command
        self._ready: list[_Warm] = []
        self._wake = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.handshakes = 0  # what the pool costs: handshakes made so far
        self.taken = 0

    @property
    def ready(self) -> int:
        """Sockets open and waiting for a command."""
        return len(self._ready)

    def start(self) -> None:
        if self._keeper is None and self.size > 0:
            self._keeper = asyncio.create_task(self._keep(), name="flux warm pool")

    async def stop(self) -> None:
        if self._keeper is not None:
            await cancel(self._keeper)
            self._keeper = None
        ready, self._ready = self._ready, []
        await asyncio.gather(*(self._discard(warm) for warm in ready), *self._closing)

    async def take(self, options: FluxOptions) -> FluxSocket | None:
        """A fresh open socket configured for `options` if one fits what cannot change after the handshake."""
        loop = asyncio.get_running_loop()
        self._last_use, self._refused = loop.time(), False
        self._wake.set()  # a command: (re)open the window
        if not self.compatible(options):
            return None
        while self._ready:
            warm = self._ready.pop(0)
            self._wake.set()  # refill
            try:
                # Bounded like a fresh connect; a cancelled or failed take closes the socket instead of leaking it.
                async with asyncio.timeout(self._connect_timeout):
                    if warm.reader is not None:  # the command reads the socket from now on
                        await cancel(warm.reader)
                        warm.reader = None
                    if not warm.socket.closed and loop.time() - warm.opened_at < self.max_age:
                        await self._configure(warm.socket, options)
                        self.taken += 1
                        return warm.socket
            except (DeepgramError, TimeoutError):  # it died or stalled while waiting: the command connects on its own
                self._close_later(warm)
                continue
            except BaseException:
                self._close_later(warm)
                raise
            self._close_later(warm)
        return None

    async def _configure(self, socket: FluxSocket, options: FluxOptions) -> None:
        """What may change after the handshake goes by Configure (Flux's answer reaches the command)."""
        changes: dict[str, list[str]] = {}
        if options.keyterms != self.options.keyterms:
            # Never over the budget: an over-limit Configure is not refused, the stream just stops transcribing.
            changes["keyterms"] = trim_keyterms(options.keyterms[:_CONFIGURE_MAX_KEYTERMS], keyterm_budget(self._url))
        if options.language_hints != self.options.language_hints:
            changes["language_hints"] = list(options.language_hints)
        if changes:
            await socket.configure(**changes)

    def _close_later(self, warm: _Warm) -> None:
        keep(self._discard(warm), self._closing)

    def compatible(self, options: FluxOptions) -> bool:
        """What cannot change after the handshake must match; keyterms and language hints go by Configure."""
        return replace(options, keyterms=(), language_hints=()) == replace(self.options, keyterms=(), language_hints=())

    async def _keep(self) -> None:
        """Refill after a take or a close, recycle before max_age, back off while Flux refuses."""
        loop = asyncio.get_running_loop()
        backoff = 1.0
        while True:
            now = loop.time()
            idle = self._refused or (self.window is not None and (
                self._last_use is None or now - self._last_use >= self.window))
            for warm in [w for w in self._ready if idle or w.socket.closed or now - w.opened_at >= self.max_age - 1.0]:
                self._ready.remove(warm)
                self._close_later(warm)
            if idle:  # no command lately: hold nothing, handshake nothing, until take() wakes us
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._ready) < self.size:
                try:
                    socket = await connect_flux(self._http, self._url, self._api_key, self.options,
                                           timeout=self._connect_timeout)
                except DeepgramError as err:
                    if not err.retryable:
                        _LOGGER.warning("Could not open a warm Flux connection (%s); not retrying before the next "
                                        "command", err)
                        self._refused = True
                        continue
                    _LOGGER.warning("Could not open a warm Flux connection (%s); retrying in %.0f s", err, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    continue
                backoff = 1.0
                self.handshakes += 1
                warm = _Warm(socket, loop.time())
                warm.reader = asyncio.create_task(self._read_idle(warm))
                self._ready.append(warm)
                continue
            oldest = min(w.opened_at for w in self._ready)
            until = oldest + self.max_age - 1.0
            if self.window is not None and self._last_use is not None:
                until = min(until, self._last_use + self.window)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, min(PING_SECONDS, until - loop.time()))):
                    await self._wake.wait()
            for warm in self._ready:  # pings keep NATs and proxies from dropping a quiet socket
                with contextlib.suppress(DeepgramError):
                    await warm.socket.ping()

    async def _read_idle(self, warm: _Warm) -> None:
        """Answer pings and notice a close while the socket waits (its Connected message is dropped)."""
        with contextlib.suppress(DeepgramError):
            while await warm.socket.receive() is not None:
                pass
        self._wake.set()  # closed: the keeper replaces it

    async def _discard(self, warm: _Warm) -> None:
        if warm.reader is not None:
            await cancel(warm.reader)
        with contextlib.suppress(DeepgramError, aiohttp.ClientError, OSError):
            if not warm.socket.closed:
                await warm.socket.close_stream()
            await warm.socket.close()
