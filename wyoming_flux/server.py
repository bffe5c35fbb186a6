"""The Wyoming server: one shared HTTP session for Flux, one handler per client connection."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import aiohttp
from wyoming.server import AsyncServer, AsyncTcpServer

from .handler import FluxEventHandler, ServerSettings, SessionGate, build_info
from .pool import WarmPool
from .session import TurnRequest, stream_options

_LOGGER = logging.getLogger(__name__)


class FluxServer:
    """Start, serve, stop. `port` tells where a tcp:// server with port 0 ended up."""

    def __init__(self, settings: ServerSettings, uri: str) -> None:
        self.settings = settings
        self.uri = uri
        self._info = build_info(settings)  # once: Describe never touches the network
        self.gate = SessionGate(settings.max_sessions)
        self._server: AsyncServer | None = None
        self._http: aiohttp.ClientSession | None = None
        self.pool: WarmPool | None = None

    @property
    def port(self) -> int | None:
        if isinstance(self._server, AsyncTcpServer) and self._server._server is not None:
            return int(self._server._server.sockets[0].getsockname()[1])
        return None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        if self.settings.warm_connections > 0:
            self.pool = self._make_pool(self._http)
            self.pool.start()
        self._server = AsyncServer.from_uri(self.uri)
        await self._server.start(self._handler_factory())

    def _make_pool(self, http: aiohttp.ClientSession) -> WarmPool:
        """Warm sockets for the usual command: the first model, 16 kHz (Home Assistant), configured tuning."""
        config = self.settings.session
        options = stream_options(config, TurnRequest(self.settings.models[0]), 16000)
        return WarmPool(http, config.url, config.api_key, options, size=self.settings.warm_connections,
                        max_age=self.settings.warm_max_age, connect_timeout=config.connect_timeout,
                        window=self.settings.warm_window)

    def _handler_factory(self) -> partial[FluxEventHandler]:
        assert self._http is not None
        return partial(FluxEventHandler, settings=self.settings, info=self._info, http=self._http, gate=self.gate,
                       pool=self.pool)

    async def stop(self) -> None:
        if self._server is not None:
            handlers = list(self._server._handlers)  # the per-connection tasks
            await self._server.stop()
            if handlers:
                await asyncio.wait(handlers, timeout=5.0)
            if isinstance(self._server, AsyncTcpServer) and self._server._server is not None:
                self._server._server.close()
                await self._server._server.wait_closed()
        if self.pool is not None:
            await self.pool.stop()
        if self._http is not None:
            await self._http.close()
