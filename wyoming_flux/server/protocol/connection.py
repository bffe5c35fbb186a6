"""One Wyoming client connection: bytes in and out, its limits, and its fair share of the event loop.

Events are parsed straight from the receive buffer in `data_received`; an audio chunk is handed to its
command there and then, with no task or queue hop. While audio streams, chunks that repeat the last one's
header are taken as a batch (see reads.py) without an event object each. What must be awaited (opening or
closing a command) pauses reading until it is done, so events stay in order and a client cannot queue work
faster than we do it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from wyoming.error import Error
from wyoming.event import Event

from ...common.tasks import keep
from .command import CommandContext, Commands, Step
from .fields import MalformedEvent
from .limits import ConnectionLimits
from ..ratelog import RateLimitedLog
from .reads import BatchWatch, ReadBatching
from ..uri import peer_address
from .wire import BadEvent, EventParser, encode_event

_LOGGER = logging.getLogger(__name__)

REFUSE_LINGER = 1.0  # seconds a refused client has to read its Error and close
EVENTS_PER_TURN = 32  # then let other connections run: no client can delay another's Describe


@dataclass
class Shared:
    """What every connection of one server shares; the server owns it."""

    commands: CommandContext
    limits: ConnectionLimits
    info: bytes  # the Describe answer, encoded once
    log: RateLimitedLog
    connections: set[WyomingConnection] = field(default_factory=set)
    teardowns: set[asyncio.Task[None]] = field(default_factory=set)
    batches: BatchWatch = field(default_factory=BatchWatch)


class WyomingConnection(asyncio.Protocol):
    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._limits = shared.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = EventParser(shared.limits.wire)
        self._commands = Commands(shared.commands, self.send, lambda: peer_address(self.peer))
        self._step: asyncio.Task[None] | None = None  # an awaited command step; reading waits for it
        self._step_started = 0.0
        self._closed_at: float | None = None
        self._write_paused_at: float | None = None
        self._yielding = False
        self._last_event = self._loop.time()
        self._event_started: float | None = None  # part of an event has come, the rest not yet
        self._streaming = False  # the last event was an audio chunk its command took: repeats may follow
        self._reads: ReadBatching | None = None
        self._refused = False
        self.peer: object = None  # the client's address (a tuple for TCP)

    # ------------------------------------------------------------ transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.peer = transport.get_extra_info("peername")
        transport.set_write_buffer_limits(high=self._limits.max_queued_bytes)
        if self._limits.read_window > 0:
            self._reads = ReadBatching(transport, self._shared.batches)
        self._shared.connections.add(self)

    def refuse(self, code: str, text: str) -> None:
        """Answer a connection the server will not serve, and close it: our side at once, theirs when the client
        closes or after REFUSE_LINGER. Until then what the client sends is read and dropped: a close with unread
        data would reset the connection, and the client would see the reset instead of the Error."""
        self.send(Error(text=text, code=code).event())
        self._refused = True
        if self._transport is not None and self._transport.can_write_eof():
            self._closed_at = self._loop.time()
            self._transport.write_eof()
        else:
            self._close()

    def data_received(self, data: bytes) -> None:
        if self._closed_at is not None:
            return
        if self._streaming and self._step is None and self._write_paused_at is None and not self._yielding:
            if (audio := self._parser.repeats(data)) is not None:
                self._last_event = self._loop.time()
                try:
                    step = self._commands.audio_repeat(audio)
                except Exception as err:  # noqa: BLE001 - as in _pump
                    self._internal_error(err)
                    return
                if step is None:
                    self._batch_reads()
                else:
                    self._run_step(step)
                return
        self._streaming = False
        if self._reads is not None:
            self._reads.off()  # not a plain stream of chunks: read each event as it comes
        self._parser.feed(data)
        self._pump()

    def eof_received(self) -> bool:
        return False  # the client is done sending: close, after what we queued goes out

    def pause_writing(self) -> None:
        self._write_paused_at = self._loop.time()
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused_at = None
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_at = self._closed_at or self._loop.time()
        self._shared.connections.discard(self)
        if self._reads is not None:
            self._reads.close()
        keep(self._teardown(), self._shared.teardowns, "wyoming connection teardown")

    # ------------------------------------------------------------ reading

    def _pump(self) -> None:
        """Handle the complete events in the buffer, up to a fair share, unless a step or the client's reading
        holds us back."""
        budget = EVENTS_PER_TURN
        while self._closed_at is None and self._step is None and self._write_paused_at is None:
            if budget == 0:
                self._last_event = self._loop.time()
                self._pause_reading()
                if not self._yielding:
                    self._yielding = True
                    self._loop.call_soon(self._resume_after_yield)
                return
            try:
                event = self._parser.next()
            except BadEvent as err:
                self._fail("bad-event", f"Bad event: {err}", "bad events", "Closing a connection that sent a bad event: %s", err)
                return
            if event is None:
                if budget < EVENTS_PER_TURN:
                    self._last_event = self._loop.time()
                if self._parser.pending and self._event_started is None:
                    self._event_started = self._loop.time()
                if self._transport is not None and not self._transport.is_reading():
                    self._transport.resume_reading()
                return
            self._event_started = None
            budget -= 1
            self._streaming = False
            try:
                step = self._dispatch(event)
            except (MalformedEvent, KeyError, TypeError, ValueError, AttributeError) as err:
                self._shared.log.warning("malformed events", "Ignoring a malformed %s event: %s", event.type, err)
                self.send(Error(text=f"Malformed {event.type} event: {err}", code="bad-event").event())
                continue
            except Exception as err:  # noqa: BLE001 - one clear line and a close, never a dead connection
                self._internal_error(err)
                return
            if step is not None:
                self._run_step(step)
            elif event.type == "audio-chunk":
                self._streaming = True
        self._pause_reading()

    def _run_step(self, step: Any) -> None:
        self._last_event = self._step_started = self._loop.time()
        self._pause_reading()
        self._step = self._loop.create_task(self._run(step), name="wyoming command step")

    def _batch_reads(self) -> None:
        """After a batch of chunks: let the kernel gather the ones that complete the next Flux frame."""
        if self._reads is None:
            return
        wanted = self._commands.audio_wanted()
        if wanted is None:
            self._reads.off()
            return
        needed, per_second = wanted
        event_bytes, payload = self._parser.last_sizes
        chunks = min(-(-needed // payload), int(self._limits.read_window * per_second / payload))
        self._reads.expect(chunks, event_bytes, chunks * payload / per_second)

    def _resume_after_yield(self) -> None:
        self._yielding = False
        self._pump()

    def _dispatch(self, event: Event) -> Step:
        kind, commands = event.type, self._commands
        if kind == "audio-chunk":  # first: every 10 ms per client
            return commands.audio_chunk(event)
        if kind == "describe":
            self._write(self._shared.info)
            return None
        if kind == "transcribe":
            return commands.transcribe(event.data)
        if kind == "audio-start":
            return commands.audio_start(event.data)
        if kind == "audio-stop":
            return commands.audio_stop()
        return None  # events we do not know are ignored, as the protocol asks

    async def _run(self, step: Any) -> None:
        try:
            await step
        except Exception as err:  # noqa: BLE001
            self._step = None
            self._internal_error(err)
            return
        self._step = None
        self._pump()

    def _pause_reading(self) -> None:
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()
            if self._reads is not None:
                self._reads.off()  # whatever waits in the kernel is read as soon as we read again

    # ------------------------------------------------------------ writing and closing

    def send(self, event: Event) -> None:
        if event.type == "error" and (metrics := self._shared.commands.metrics) is not None:
            metrics.error_sent(event.data.get("code") if event.data else None)
        self._write(encode_event(event))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _fail(self, code: str, text: str, kind: str, message: str, *args: object) -> None:
        """One Error (if the socket can still take it), a close, and one log line (rate-limited)."""
        self._shared.log.warning(kind, message, *args)
        self.send(Error(text=text, code=code).event())
        self._close()

    def _internal_error(self, err: Exception) -> None:
        _LOGGER.debug("Connection error", exc_info=err)
        self._fail("internal-error", "The server could not handle this connection", "internal errors",
                   "Closing a connection after an internal error: %s: %s", type(err).__name__, err)

    def _close(self) -> None:
        if self._closed_at is None:
            self._closed_at = self._loop.time()
        if self._transport is not None:
            self._transport.close()  # what is queued still goes out; check() aborts a client that won't read

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def _teardown(self) -> None:
        step, self._step = self._step, None
        if step is not None:
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await step
        try:
            await self._commands.close()
        except Exception as err:  # noqa: BLE001
            self._shared.log.warning("internal errors", "Error while closing a command: %s: %s", type(err).__name__, err)

    # ------------------------------------------------------------ limits in time

    def check(self, now: float) -> None:
        """Called about every second by the server: enforce the time limits."""
        limits = self._limits
        if self._closed_at is not None:
            if now - self._closed_at > (min(REFUSE_LINGER, limits.send_timeout) if self._refused else limits.send_timeout):
                self.abort()  # closed, but the client never read what was queued (or, refused, never closed)
        elif self._write_paused_at is not None and now - self._write_paused_at > limits.send_timeout:
            self._shared.log.warning("unread connections", "Dropping a client that does not read its answers")
            self._closed_at = now
            self.abort()
        elif self._step is not None:
            # We are the ones busy and the command's own bounds apply; this only catches a step that outlives
            # them all, so that a client is never left waiting and its socket never lingers.
            if now - self._step_started > (bound := self._shared.commands.step_bound):
                self._shared.log.warning("stuck commands", "Dropping a connection whose command did not end "
                                         "within %g s", bound)
                self.send(Error(text=f"The command did not end within {bound:g} s", code="timeout").event())
                self._closed_at = now
                self.abort()
        elif self._yielding:
            return
        elif self._event_started is not None and now - self._event_started > limits.event_timeout:
            self._fail("timeout", f"An event was not completed within {limits.event_timeout:g} s", "timeouts",
                       "Closing a connection that started an event and did not finish it")
        elif now - self._last_event > (limit := limits.audio_timeout if self._commands.open else limits.idle_timeout):
            what = "audio" if self._commands.open else "an event"
            _LOGGER.debug("Closing a connection: no %s for %g s", what, limit)
            self.send(Error(text=f"No {what} for {limit:g} s", code="timeout").event())
            self._close()
