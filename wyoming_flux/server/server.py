"""The Wyoming server: listens, admits connections (count and --allow), keeps time for their limits, and
shares one HTTP session for Flux sized to the commands that may run at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import resource
import stat
from typing import TYPE_CHECKING

import aiohttp

from ..common.tasks import cancel
from ..common.wording import count
from ..deepgram.catalog import lacks_nova, load_catalog, served_models
from ..deepgram.flux import FluxOptions
from ..deepgram.models import Api
from ..deepgram.pool import WarmPool
from ..turn.completion import CachedCompletion
from ..turn.fallback import DeepgramHealth
from ..turn.session import TurnRequest, stream_options
from .protocol.command import CommandContext, SessionGate
from .protocol.connection import Shared, WyomingConnection
from .protocol.fallback_client import WyomingFallback, probe
from .hass.names import HassNames
from .monitoring.http_endpoint import HttpLimits
from .monitoring.http_endpoint import MetricsListenError
from .ratelog import RateLimitedLog
from .settings import ServerSettings, build_info, client_allowed
from .uri import peer_address, tcp_address, unix_path
from .protocol.wire import encode_event

if TYPE_CHECKING:
    from .monitoring.metrics import MetricsEndpoint, ServerMetrics

_LOGGER = logging.getLogger(__name__)


class WyomingServer:
    """Start, serve, stop. `port` tells where a tcp:// server with port 0 ended up."""

    def __init__(self, settings: ServerSettings, uri: str) -> None:
        self.settings = settings
        self.uri = uri
        self._info = encode_event(build_info(settings).event())  # once: Describe never touches the network
        self.gate = SessionGate(settings.max_sessions)
        self.log = RateLimitedLog(_LOGGER)
        self._server: asyncio.Server | None = None
        self._http: aiohttp.ClientSession | None = None
        self._shared: Shared | None = None
        self._clock: asyncio.Task[None] | None = None
        self.pool: WarmPool | None = None
        self.names: HassNames | None = None
        self.completion: CachedCompletion | None = None  # early answers: Home Assistant's recogniser, on names' link
        self.metrics: ServerMetrics | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        self.metrics_limits = HttpLimits()  # what the metrics port's clients may hold (a caller may change it)

    @property
    def port(self) -> int | None:
        if self._server is not None and self.uri.startswith("tcp://") and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return None

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_endpoint.port if self._metrics_endpoint is not None else None

    @property
    def connections(self) -> int:
        return len(self._shared.connections) if self._shared is not None else 0

    def flux_connection_limit(self) -> int:
        """Flux sockets that can be open at once: every command that may run and the stream of the command it
        follows, still closing in the background, plus warm ones and their replacements. aiohttp's default of
        100 would otherwise queue the 101st stream until it timed out."""
        commands = self.settings.max_sessions or self.settings.limits.max_connections
        return 2 * commands + 2 * self.settings.warm_connections + 1

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # nothing half-started is left behind (no "Unclosed client session")
            raise

    def descriptors_needed(self) -> int:
        """Wyoming connections, their Flux sockets, the metrics port's connections, and room for the rest
        (listeners, Home Assistant, the fallback, logs)."""
        metrics = self.metrics_limits.max_connections + 1 if self.settings.metrics_port is not None else 0
        return self.settings.limits.max_connections + self.flux_connection_limit() + metrics + 64

    def _ensure_descriptors(self) -> None:
        """Each connection may hold a Flux socket too: make sure the process may open that many descriptors, so a
        full server refuses with an Error instead of failing accept() with EMFILE."""
        needed = self.descriptors_needed()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            if soft < needed:
                _LOGGER.warning("The open-file limit (%d) is below what --max-connections %d may need (%d); "
                                "lower --max-connections or raise the limit (ulimit -n)", soft,
                                self.settings.limits.max_connections, needed)

    async def _start(self) -> None:
        self._ensure_descriptors()
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.flux_connection_limit()))
        await self._learn_models(self._http)
        if self.settings.hass_url and self.names is None:  # a caller may bring its own (other bounds)
            self.names = HassNames(self.settings.hass_url, self.settings.hass_token)
        session = self.settings.session
        if self.names is not None and session.early_answer and session.end_on_flux_eot:  # nothing ends early else
            self.completion = CachedCompletion(self.names.recognise, self.names.recognising)
        if self.settings.warm_connections > 0:
            self.pool = self._make_pool(self._http)
            if self.pool is not None:
                self.pool.start()
        if self.settings.metrics_port is not None:
            try:  # only when asked for: prometheus-client is not needed otherwise
                from .monitoring.metrics import ServerMetrics
            except ImportError as err:
                raise MetricsListenError(f"--metrics-port needs {err.name}: install 'wyoming-flux[server]'") from None
            self.metrics = ServerMetrics()
            self.metrics.watch(lambda: self.gate.active, lambda: self.connections,
                               lambda: self.pool.ready if self.pool is not None else 0)
        if self.names is not None:
            self.names.start()
        fallback = None
        if self.settings.fallback_uri:
            fallback = WyomingFallback(self.settings.fallback_uri, self.settings.fallback_timeout)
        context = CommandContext(self.settings.session, self.settings.models, self._http, self.gate, self.log, self.pool,
                                 names=self.names.current if self.names is not None else tuple,
                                 fallback=fallback, health=DeepgramHealth(), metrics=self.metrics,
                                 completion=self.completion,
                                 on_resumed=self.metrics.early_answer_resumed if self.metrics is not None else None)
        self._shared = Shared(context, self.settings.limits, self._info, self.log)
        loop = asyncio.get_running_loop()
        if self.uri.startswith("unix://"):
            path = unix_path(self.uri)
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISSOCK(os.lstat(path).st_mode):  # a file of the user's is never removed
                    raise FileExistsError(errno.EEXIST, "exists and is not a socket")
                os.unlink(path)  # a socket file left by a previous run
            self._server = await loop.create_unix_server(self._accept, path)
        else:
            host, port = tcp_address(self.uri)
            self._server = await loop.create_server(self._accept, host, port)
        self._clock = asyncio.create_task(self._keep_time(), name="wyoming connection limits")
        if fallback is not None:
            await self._probe_fallback(fallback.uri)
        if self.metrics is not None and self.settings.metrics_port is not None:
            from .monitoring.metrics import MetricsEndpoint

            self._metrics_endpoint = MetricsEndpoint(self.metrics, self._serving, self.settings.metrics_host,
                                                     self.settings.metrics_port, self.metrics_limits)
            await self._metrics_endpoint.start()

    async def _learn_models(self, http: aiohttp.ClientSession) -> None:
        """What the host serves now, asked once at start (bounded; the built-in table where it does not say):
        Nova-3 with the languages Deepgram lists, and beside Flux no Nova-3 at all on a host without it (said
        once here rather than on every command). Info offers what is left."""
        config, models = self.settings.session, self.settings.models
        if not any(model.api == Api.NOVA for model in models):
            return
        catalog = await load_catalog(http, config.url, config.api_key, timeout=config.connect_timeout)
        served = served_models(models, catalog)
        if await lacks_nova(http, config.url, config.api_key, catalog, timeout=config.connect_timeout):
            if len(served) > 1:
                served = [model for model in served if model.api != Api.NOVA]
                _LOGGER.warning("%s serves Flux but not Nova-3 (no /v1/listen): offering only the languages of %s; "
                                "commands in other languages get an Error (--no-nova says so without this check)",
                                config.nova_url.rsplit("/v1/", 1)[0], ", ".join(m.name for m in served))
            else:
                _LOGGER.warning("%s does not serve Nova-3 (no /v1/listen): every command will fail with "
                                "flux-not-found", config.nova_url.rsplit("/v1/", 1)[0])
        nova = next((model for model in served if model.api == Api.NOVA), None)
        if nova is not None:
            _LOGGER.info("Nova-3: %d monolingual language codes, %s", len(nova.monolingual),
                         "from Deepgram's model list" if catalog is not None else "from the built-in table")
        self.settings = dataclasses.replace(self.settings, models=tuple(served))
        self._info = encode_event(build_info(self.settings).event())

    async def _probe_fallback(self, uri: str) -> None:
        """One Describe to the fallback once we listen: a fallback that is down is one warning now rather than a
        surprise in an outage, and one that leads back here (FallbackLoopError) stops the start."""
        shared = self._shared
        assert shared is not None

        def is_self(sockname: tuple[object, ...]) -> bool:
            return any(isinstance(c.peer, tuple) and c.peer[:2] == tuple(sockname[:2]) for c in shared.connections)

        if (why := await probe(uri, is_self)) is not None:
            _LOGGER.warning("The fallback at %s does not answer (%s); commands go to it when Flux cannot answer, "
                            "so start it before Flux has an outage", uri, why)

    def _serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    def _accept(self) -> WyomingConnection:
        assert self._shared is not None
        return Admission(self._shared, self.settings)

    def _make_pool(self, http: aiohttp.ClientSession) -> WarmPool | None:
        """Warm sockets for the usual command: the first Flux model, 16 kHz (Home Assistant), configured tuning.
        None when only Nova-3 is offered: its commands always handshake (README: warm buys nothing measurable)."""
        config = self.settings.session
        model = next((m for m in self.settings.models if m.api == Api.FLUX), None)
        if model is None:
            return None
        # As a command asks while Home Assistant's recogniser can answer (the usual case): eager end-of-turn on.
        options = stream_options(config, TurnRequest(model), 16000, early=self.completion is not None)
        assert isinstance(options, FluxOptions)
        return WarmPool(http, config.url, config.api_key, options, size=self.settings.warm_connections,
                        max_age=self.settings.warm_max_age, connect_timeout=config.connect_timeout,
                        window=self.settings.warm_window)

    async def _keep_time(self) -> None:
        assert self._shared is not None
        limits = self.settings.limits
        tick = max(0.02, min(1.0, limits.idle_timeout, limits.audio_timeout, limits.event_timeout,
                             limits.send_timeout) / 4)
        while True:
            await asyncio.sleep(tick)
            now = asyncio.get_running_loop().time()
            for connection in list(self._shared.connections):
                connection.check(now)
            self.log.flush()

    async def stop(self) -> None:
        if self._metrics_endpoint is not None:
            await self._metrics_endpoint.stop()
        if self._server is not None:
            self._server.close()
        if self._clock is not None:
            await cancel(self._clock)
        if self._shared is not None:
            for connection in list(self._shared.connections):
                connection.abort()
            await asyncio.sleep(0)  # let connection_lost run and start the teardowns
            if self._shared.teardowns:
                await asyncio.wait(set(self._shared.teardowns), timeout=5.0)
            if closing := self._shared.commands.closing:  # each bounded by the session's own close timeout
                await asyncio.wait(set(closing), timeout=5.0)
            self._shared.batches.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self.pool is not None:
            await self.pool.stop()
        if self.completion is not None:
            await self.completion.aclose()
        if self.names is not None:
            await self.names.stop()
        if self._http is not None:
            await self._http.close()
        self.log.flush(force=True)


class Admission(WyomingConnection):
    """A connection that first checks it may be served: under --max-connections and inside --allow."""

    def __init__(self, shared: Shared, settings: ServerSettings) -> None:
        super().__init__(shared)
        self._settings = settings

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shared, settings = self._shared, self._settings
        full = len(shared.connections) >= settings.limits.max_connections
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if full:
            open_now = len(shared.connections) - 1
            shared.log.warning("refused connections", "Refused a connection from %s: %s open (--max-connections)",
                               peer_address(peer), f"{count(open_now, 'connection is', 'connections are')}")
            self.refuse("server-full", "The server has too many connections; try again shortly")
        elif not client_allowed(peer, settings.allow):
            shared.log.warning("refused connections", "Refused a connection from %s: not in --allow",
                               peer_address(peer))
            self.refuse("client-not-allowed", "This client is not allowed to use this server")
