"""Prometheus metrics for one server, and the small HTTP endpoint that serves them (/metrics, /healthz).

Each server owns its own registry, so several servers in one process (tests, or two instances) never share or
double-register a metric. Commands are counted once, at their end, from their TurnResult: nothing here runs
per audio chunk. Gauges are read from the server's own state when scraped, never kept in step by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ...turn.request import TurnResult
from .http_endpoint import Answer, HttpEndpoint, HttpLimits
from .http_endpoint import MetricsListenError

_LOGGER = logging.getLogger(__name__)

PREFIX = "wyoming_flux"
# Seconds: a voice answer is good under 0.5 s and broken past a few; Flux handshakes take ~0.1-0.3 s.
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
HANDSHAKE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
CONFIGURE_FAILED_NOTE = "configure-failed"
FALLBACK_OUTCOME = "fallback"  # the outcome label of a command a fallback server answered


class ServerMetrics:
    """The metrics of one server. `command_done` is called once per command; the rest as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._rendered: bytes | None = None
        self._rendered_key: tuple[float, ...] = ()
        self._changes = 0  # counted figures changed this many times
        self._gauges: tuple[Callable[[], float], ...] = ()
        r = self.registry
        self.commands = Counter(f"{PREFIX}_commands", "Commands by outcome (how they ended) and trigger (Deepgram's "
                                "end-of-turn trigger, eager_complete for an early answer, none when Deepgram did "
                                "not end the turn)", ["outcome", "trigger"], registry=r)
        self.early_resumed = Counter(f"{PREFIX}_early_answers_resumed", "Early answers after which the speaker "
                                     "went on: commands cut short by answering early", registry=r)
        self.audio = Counter(f"{PREFIX}_audio_sent_seconds", "Seconds of audio Flux received (what Deepgram "
                             "bills; TurnResult.billed_seconds, as the integration's usage counts it)", registry=r)
        self.latency = Histogram(f"{PREFIX}_speech_end_to_transcript_seconds", "From the end of speech (the last "
                                 "word's end, by Deepgram's word timings) to the transcript", buckets=LATENCY_BUCKETS, registry=r)
        self.handshake = Histogram(f"{PREFIX}_flux_handshake_seconds", "From the command's start to its Flux "
                                   "stream being open (socket=warm: taken from the warm pool)", ["socket"],
                                   buckets=HANDSHAKE_BUCKETS, registry=r)
        self.errors = Counter(f"{PREFIX}_errors", "Error events sent to clients, by code", ["code"], registry=r)
        self.fallbacks = Counter(f"{PREFIX}_fallbacks", "Commands answered by the fallback server", registry=r)
        self.configure_failures = Counter(f"{PREFIX}_configure_failures", "Configure messages Flux refused "
                                          "(the command went on with the socket's first configuration)", registry=r)
        self.sessions = Gauge(f"{PREFIX}_active_sessions", "Commands streaming to Flux now", registry=r)
        self.connections = Gauge(f"{PREFIX}_active_connections", "Open Wyoming client connections", registry=r)
        self.warm = Gauge(f"{PREFIX}_warm_sockets", "Flux sockets open and waiting for a command", registry=r)

    def watch(self, sessions: Callable[[], float], connections: Callable[[], float],
              warm: Callable[[], float]) -> None:
        """Read the live counts from their owners when scraped."""
        self.sessions.set_function(sessions)
        self.connections.set_function(connections)
        self.warm.set_function(warm)
        self._gauges = (sessions, connections, warm)

    def command_done(self, result: TurnResult, *, fallback: bool = False) -> None:
        self._changes += 1
        outcome = FALLBACK_OUTCOME if fallback else result.ended_by.value
        self.commands.labels(outcome=outcome, trigger=result.trigger or "none").inc()
        if fallback:
            self.fallbacks.inc()
        self.audio.inc(result.billed_seconds)
        if result.speech_end_seconds is not None:
            self.latency.observe(result.speech_end_seconds)
        if result.connect_seconds is not None:
            self.handshake.labels(socket="warm" if result.warm else "new").observe(result.connect_seconds)
        failed = sum(1 for note in result.notes if note.startswith(CONFIGURE_FAILED_NOTE))
        if failed:
            self.configure_failures.inc(failed)

    def early_answer_resumed(self) -> None:
        self._changes += 1
        self.early_resumed.inc()

    def error_sent(self, code: str | None) -> None:
        self._changes += 1
        self.errors.labels(code=code or "unknown").inc()

    def render(self) -> bytes:
        """The text of every metric, rendered again only when a figure changed: a scrape flood costs a few
        gauge reads per request, not a rendering."""
        key = (self._changes, *(read() for read in self._gauges))
        if self._rendered is None or key != self._rendered_key:
            self._rendered, self._rendered_key = generate_latest(self.registry), key
        return self._rendered


class MetricsEndpoint:
    """/metrics (Prometheus text format) and /healthz (200 while the server listens) on their own port, with
    their own connection cap and deadlines (http_endpoint.py): they can never take what the Wyoming port needs."""

    def __init__(self, metrics: ServerMetrics, healthy: Callable[[], bool], host: str, port: int,
                 limits: HttpLimits = HttpLimits()) -> None:
        self._metrics, self._healthy = metrics, healthy
        self.host, self._port = host, port
        self._http = HttpEndpoint({"/metrics": self._serve_metrics, "/healthz": self._serve_health}, host, port,
                                  limits)

    @property
    def port(self) -> int | None:
        return self._http.port

    async def start(self) -> None:
        try:
            await self._http.start()
        except OSError as err:
            raise MetricsListenError(f"cannot serve metrics on {self.host}:{self._port}: {err.strerror or err}") from None
        _LOGGER.info("Metrics on http://%s:%d/metrics", self.host, self.port or self._port)

    async def stop(self) -> None:
        await self._http.stop()

    def _serve_metrics(self) -> Answer:
        return 200, CONTENT_TYPE_LATEST, self._metrics.render()

    def _serve_health(self) -> Answer:
        if self._healthy():
            return 200, "text/plain; charset=utf-8", b"ok\n"
        return 503, "text/plain; charset=utf-8", b"not serving\n"
