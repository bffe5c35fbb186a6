"""Wyoming commands of one connection: Transcribe/Audio* events -> a TurnSession -> the answer events.

`handle()` returns None when an event is done, or a coroutine the connection awaits before the next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiohttp
from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.error import Error
from wyoming.event import Event

from ...common.tasks import keep
from ...common.wording import count
from ...deepgram.models import Model
from ...deepgram.pool import WarmPool
from ...turn.command import AUDIO_FORMAT, Command, CommandRefused, CommandSetup, Fallback, check_audio
from ...turn.completion import CompletionCheck
from ...turn.fallback import FALLBACK_GRACE, STOP_TIMEOUT, DeepgramHealth
from ...turn.request import TurnResult
from ...turn.session import Ending, SessionConfig
from ..ratelog import RateLimitedLog
from . import fields
from .fallback_client import WyomingFallback, from_fallback
from .fields import AudioFormat, MalformedEvent
from .partials import ChunkStream


class CommandMetrics(Protocol):
    """What commands and connections report to the metrics (monitoring/metrics.py's ServerMetrics)."""

    def command_done(self, result: TurnResult, *, fallback: bool = False) -> None: ...

    def error_sent(self, code: str | None) -> None: ...


_LOGGER = logging.getLogger(__name__)

Step = Coroutine[Any, Any, None] | None
STEP_MARGIN = 5.0  # seconds on top of a command's own bounds before its connection is dropped as stuck
Send = Callable[[Event], None]


class SessionGate:
    """Counts live commands across all connections, so excess ones are refused before a Flux stream opens."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.active = 0

    def enter(self) -> bool:
        if self.limit is not None and self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


@dataclass(frozen=True)
class CommandContext:
    """What every command of a server shares."""

    config: SessionConfig
    models: tuple[Model, ...]
    http: aiohttp.ClientSession
    gate: SessionGate
    log: RateLimitedLog
    pool: WarmPool | None = None
    names: Callable[[], tuple[str, ...]] = tuple  # names from Home Assistant known now, never awaited
    fallback: WyomingFallback | None = None
    health: DeepgramHealth | None = None  # shared by every command: after a failure, Flux is skipped for a while
    metrics: CommandMetrics | None = None
    completion: CompletionCheck | None = None  # Home Assistant's recogniser, for early answers (--hass-url)
    on_resumed: Callable[[], None] | None = None  # the speaker went on after an early answer (counted)
    closing: set[asyncio.Task[None]] = field(default_factory=set)  # Flux streams of ended commands, closing

    @property
    def step_bound(self) -> float:
        """Seconds past which an awaited command step (opening, answering, closing) is taken as stuck: every
        bound the command has, summed, and a margin. It never decides an answer; it only frees a connection."""
        config = self.config
        bound = config.max_command_seconds + config.connect_timeout + config.finalize_timeout + config.stall_timeout
        if self.fallback is not None:
            bound += self.fallback.timeout + FALLBACK_GRACE + STOP_TIMEOUT
        return bound + STEP_MARGIN

    def close_later(self, command: Command) -> None:
        """Close a command's stream (bounded) without holding its connection's next event."""
        keep(command.aclose(), self.closing, "deepgram stream close")


class Commands:
    """Transcribe, AudioStart, AudioChunk, AudioStop for one connection; one command at a time. The command
    itself is the shared runner's (turn/command.py); this adapts Wyoming events to it and its answer to events."""

    def __init__(self, context: CommandContext, send: Send, peer: Callable[[], str] = lambda: "a client") -> None:
        self._ctx = context
        self._send = send
        self._peer = peer  # for log lines: the address a refusal went to
        self._asked: tuple[str | None, str | None, tuple[str, ...]] = (None, None, ())  # Transcribe's model, language, terms
        self._open = False  # between AudioStart (or a first bare AudioChunk) and AudioStop
        self._format: AudioFormat | None = None
        self._chunk_format: tuple[int, int, int] | None = None  # (rate, width, channels) of the last chunk
        self._answered = False
        self._holds_gate = False
        self._language: str | None = None
        self._command: Command | None = None
        self._answer_task: asyncio.Task[None] | None = None
        self._chunks = ChunkStream()
        self._from_fallback = False  # the next command is another wyoming-flux's fallback: no fallback of ours

    @property
    def open(self) -> bool:
        return self._open

    def transcribe(self, data: dict[str, Any]) -> Step:
        keyterms = (*fields.texts(data, "transcript_names"), *fields.texts(data, "transcript_terms"))
        self._asked = (fields.text(data, "name"), fields.text(data, "language"), keyterms)  # for the next command
        self._from_fallback = from_fallback(data)
        return None

    def audio_start(self, data: dict[str, Any]) -> Step:
        return self._start(fields.audio_format(data))

    def audio_chunk(self, event: Event) -> Step:
        if not self._open:  # peers start a command with the chunk's own format
            try:
                fmt = fields.audio_format(event.data)
            except MalformedEvent:
                self._open, self._answered = True, False
                self._answer_error("audio-chunk before audio-start needs rate, width and channels", "bad-event")
                return None
            return self._start_and_feed(fmt, event)
        if self._discarding:
            return None
        data = event.data  # read directly: this runs for every chunk
        try:
            if "rate" in data and "width" in data and "channels" in data:
                chunk_format = (data["rate"], data["width"], data["channels"])
            else:  # some clients send bare chunks after AudioStart
                fmt = fields.audio_format(data, self._format)
                chunk_format = (fmt.rate, fmt.width, fmt.channels)
        except MalformedEvent as err:
            return self._refuse(CommandRefused(AUDIO_FORMAT, f"Audio format not supported: {err}"))
        self._chunk_format = chunk_format
        return self._feed(event.payload or b"")

    def audio_repeat(self, audio: bytes) -> Step:
        """The audio of chunks that repeat the last one's header and data (so its format) exactly."""
        return None if self._discarding else self._feed(audio)

    @property
    def _discarding(self) -> bool:
        """Refused, failed or already answered: audio is discarded until AudioStop."""
        return self._answered or self._command is None or self._command.discarding

    def audio_wanted(self) -> tuple[int, int] | None:
        """(client bytes that complete the next Deepgram frame, client bytes per second of audio) while the
        command streams and Deepgram ends the command; None when there is nothing to wait for."""
        command, fmt = self._command, self._chunk_format
        if command is None or fmt is None or self._answered or not self._ctx.config.end_on_flux_eot:
            return None  # with the client's VAD, AudioStop ends the command: read it as soon as it comes
        needed = command.audio_needed()
        return (needed, fmt[0] * fmt[1] * fmt[2]) if needed else None

    def _feed(self, audio: bytes) -> Step:
        command = self._command
        if command is None:
            return None
        try:
            command.feed(audio, *(self._chunk_format or (0, 0, 0)))
        except CommandRefused as err:
            return self._refuse(err)
        return None

    def _refuse(self, err: CommandRefused) -> Step:
        self._answer_refusal(err)
        return self._end_command(keep_open=True)  # answered: the rest is discarded until AudioStop

    def audio_stop(self) -> Step:
        if not self._open:  # nothing to transcribe: answer as peers do, with empty text
            language, self._asked = self._asked[1], (None, None, ())
            self._send(Transcript(text="", language=language).event())
            return None
        return self._stop()

    async def close(self) -> None:
        await self._end_command()

    # ------------------------------------------------------------ command life

    async def _start_and_feed(self, fmt: AudioFormat, chunk: Event) -> None:
        await self._start(fmt)
        if (step := self.audio_chunk(chunk)) is not None:
            await step

    def _setup(self) -> CommandSetup:
        ctx = self._ctx
        return CommandSetup(ctx.config, ctx.models, ctx.http, ctx.health, ctx.pool, completion=ctx.completion,
                            on_resumed=ctx.on_resumed)

    async def _start(self, fmt: AudioFormat) -> None:
        await self._end_command()  # a new stream replaces one the client abandoned
        self._open, self._answered, self._format, self._chunk_format = True, False, fmt, None
        (name, language, terms), self._asked = self._asked, (None, None, ())
        to_fallback, self._from_fallback = self._ctx.fallback is not None and not self._from_fallback, False
        setup = self._setup()
        try:
            request = setup.request(language, name=name, keyterms=terms)
            check_audio(fmt.rate, fmt.width, fmt.channels)
        except CommandRefused as err:
            self._answer_refusal(err)
            return
        if names := self._ctx.names():  # after configured and client terms; the budget trims the rest
            request = replace(request, keyterms=(*request.keyterms, *names))
        if not self._ctx.gate.enter():
            active = self._ctx.gate.active
            self._ctx.log.warning("refused commands", "Refused a command: %s already running (--max-sessions)",
                                  f"{count(active, 'command')} {'is' if active == 1 else 'are'}")
            self._answer_error("The server is at its limit of concurrent commands; try again shortly", "server-busy")
            return
        self._holds_gate = True
        try:
            self._chunks = ChunkStream()
            self._language = request.language
            fallback = None
            if to_fallback and (client := self._ctx.fallback) is not None:
                fallback = Fallback(lambda audio: client.replay(audio, language), client.timeout)
            self._command = Command(setup, request, fmt.rate, fmt.width, fmt.channels, fallback=fallback,
                                    on_partial=self._on_partial)
            self._answer_task = asyncio.create_task(self._answer_when_decided(self._command))
        except BaseException:
            self._release_gate()
            raise

    async def _stop(self) -> None:
        command = self._command
        if command is not None and not self._answered:
            with contextlib.suppress(asyncio.CancelledError):
                await command.finish()
            if self._answer_task is not None:
                await self._answer_task  # the answer is written before we read the next event
        await self._end_command()

    def _release_gate(self) -> None:
        if self._holds_gate:
            self._holds_gate = False
            self._ctx.gate.leave()

    async def _end_command(self, keep_open: bool = False) -> None:
        self._open = keep_open
        self._release_gate()
        command, self._command = self._command, None
        task, self._answer_task = self._answer_task, None
        if command is not None:
            command.abandon()  # the client left before a fallback answered: nobody waits for it
            self._ctx.close_later(command)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------ answers

    def _on_partial(self, text: str) -> None:
        if self._answered:
            return
        if (delta := self._chunks.delta(text)):
            self._start_streaming()
            self._send(TranscriptChunk(text=delta).event())

    def _start_streaming(self) -> None:
        if not self._chunks.started:
            self._chunks.started = True
            self._send(TranscriptStart(language=self._language).event())

    async def _answer_when_decided(self, command: Command) -> None:
        result = await command.result()
        self._release_gate()  # the stream closes now; the client may keep sending until AudioStop
        if self._ctx.metrics is not None:
            self._ctx.metrics.command_done(result, fallback=result.fallback)
        if self._answered or result.ended_by is Ending.CANCELLED:
            return
        if result.ended_by is Ending.ERROR:
            error = result.error
            _LOGGER.warning("Command failed (%s): %s", error.code if error else "?", error)
            self._answer_error(str(error), error.code if error else "flux-error")
            return
        self._answered = True
        if self._chunks.started and (tail := self._chunks.delta(result.text, final=True)):
            self._send(TranscriptChunk(text=tail).event())
        self._send(Transcript(text=result.text, language=result.language or self._language).event())
        if self._chunks.started:
            self._send(TranscriptStop().event())

    def _answer_refusal(self, err: CommandRefused) -> None:
        _LOGGER.warning("Refused a command from %s (%s): %s", self._peer(), err.code, err)
        self._answer_error(str(err), err.code)

    def _answer_error(self, text: str, code: str) -> None:
        if not self._answered:
            self._answered = True
            self._send(Error(text=text, code=code).event())
