"""Wyoming commands of one connection: Transcribe/Audio* events -> a TurnSession -> the answer events.

`handle()` returns None when an event is done, or a coroutine the connection awaits before the next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp
from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.error import Error
from wyoming.event import Event

from ..common.tasks import keep
from ..common.wording import count
from ..deepgram.models import FluxModel, choose_model, unserved_language
from ..deepgram.pool import WarmPool
from ..turn.audio import AudioFormatError, check_format
from ..turn.fallback import FALLBACK_GRACE, STOP_TIMEOUT, AudioBuffer, FluxHealth, answer_with_fallback
from ..turn.session import Ending, SessionConfig, TurnRequest, TurnResult, TurnSession
from . import fields
from .fallback_client import WyomingFallback, from_fallback
from .fields import AudioFormat, MalformedEvent
from .partials import ChunkStream
from .ratelog import RateLimitedLog

if TYPE_CHECKING:  # prometheus-client is imported only by a server that serves metrics
    from .metrics import ServerMetrics

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
    models: tuple[FluxModel, ...]
    http: aiohttp.ClientSession
    gate: SessionGate
    log: RateLimitedLog
    pool: WarmPool | None = None
    names: Callable[[], tuple[str, ...]] = tuple  # names from Home Assistant known now, never awaited
    fallback: WyomingFallback | None = None
    health: FluxHealth | None = None  # shared by every command: after a failure, Flux is skipped for a while
    metrics: ServerMetrics | None = None
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

    def close_later(self, session: TurnSession) -> None:
        """Close a command's Flux stream (bounded) without holding its connection's next event."""
        keep(session.aclose(), self.closing, "flux stream close")


class Commands:
    """Transcribe, AudioStart, AudioChunk, AudioStop for one connection; one command at a time."""

    def __init__(self, context: CommandContext, send: Send) -> None:
        self._ctx = context
        self._send = send
        self._request: TurnRequest | None = None  # from a Transcribe, for the next command only
        self._unserved: str | None = None  # the next command's language, which no offered model speaks
        self._open = False  # between AudioStart (or a first bare AudioChunk) and AudioStop
        self._format: AudioFormat | None = None
        self._chunk_format: tuple[int, int, int] | None = None  # (rate, width, channels) of the last chunk
        self._answered = False
        self._holds_gate = False
        self._language: str | None = None
        self._session: TurnSession | None = None
        self._buffer: AudioBuffer | None = None  # the command's audio, for the fallback (when one is set)
        self._started = 0.0  # loop time the command started
        self._answer_task: asyncio.Task[None] | None = None
        self._chunks = ChunkStream()
        self._from_fallback = False  # the next command is another wyoming-flux's fallback: no fallback of ours

    @property
    def open(self) -> bool:
        return self._open

    def transcribe(self, data: dict[str, Any]) -> Step:
        name, language = fields.text(data, "name"), fields.text(data, "language")
        keyterms = (*fields.texts(data, "transcript_names"), *fields.texts(data, "transcript_terms"))
        model = choose_model(list(self._ctx.models), name, language)
        self._unserved = None if model is not None or language is None else language
        self._request = (None if model is None  # for the next command
                         else TurnRequest(model=model, language=language, keyterms=keyterms))
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
            return self._refuse_audio(err)
        self._chunk_format = chunk_format
        return self._feed(event.payload or b"")

    def audio_repeat(self, audio: bytes) -> Step:
        """The audio of chunks that repeat the last one's header and data (so its format) exactly."""
        return None if self._discarding else self._feed(audio)

    @property
    def _discarding(self) -> bool:
        """Refused, failed or already answered: audio is discarded until AudioStop."""
        return self._answered or (self._session is None and self._buffer is None)

    def audio_wanted(self) -> tuple[int, int] | None:
        """(client bytes that complete the next Flux frame, client bytes per second of audio) while the
        command streams to Flux and Flux ends the turn; None when there is nothing to wait for."""
        session, fmt = self._session, self._chunk_format
        if session is None or fmt is None or self._answered or not self._ctx.config.end_on_flux_eot:
            return None  # with the client's VAD, AudioStop ends the command: read it as soon as it comes
        needed = session.audio_needed()
        return (needed, fmt[0] * fmt[1] * fmt[2]) if needed else None

    def _feed(self, audio: bytes) -> Step:
        session, buffer = self._session, self._buffer
        rate, width, channels = self._chunk_format or (0, 0, 0)
        try:
            if session is not None:
                session.feed(audio, rate, width, channels)
            elif buffer is not None:  # Flux is skipped: the checks feed() would make
                check_format(rate, width, channels)
            if buffer is not None:
                buffer.append(audio, rate, width, channels)
        except (AudioFormatError, TypeError) as err:
            return self._refuse_audio(err)
        return None

    def _refuse_audio(self, err: Exception) -> Step:
        self._answer_error(f"Audio format not supported: {err}", "audio-format")
        return self._end_command(keep_open=True)  # answered: the rest is discarded until AudioStop

    def audio_stop(self) -> Step:
        if not self._open:  # nothing to transcribe: answer as peers do, with empty text
            request, self._request = self._request, None
            self._send(Transcript(text="", language=request.language if request else None).event())
            return None
        return self._stop()

    async def close(self) -> None:
        await self._end_command()

    # ------------------------------------------------------------ command life

    async def _start_and_feed(self, fmt: AudioFormat, chunk: Event) -> None:
        await self._start(fmt)
        if (step := self.audio_chunk(chunk)) is not None:
            await step

    async def _start(self, fmt: AudioFormat) -> None:
        await self._end_command()  # a new stream replaces one the client abandoned
        self._open, self._answered, self._format, self._chunk_format = True, False, fmt, None
        request, self._request = self._request, None
        to_fallback, self._from_fallback = self._ctx.fallback is not None and not self._from_fallback, False
        if (unserved := self._unserved) is not None:  # never a transcript in the wrong language
            self._unserved = None
            why = unserved_language(list(self._ctx.models), unserved)
            self._answer_error(why, "unsupported-language")
            return
        try:
            check_format(fmt.rate, fmt.width, fmt.channels)
        except AudioFormatError as err:
            self._answer_error(f"Audio format not supported: {err}", "audio-format")
            return
        request = request or TurnRequest(model=self._ctx.models[0])
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
            self._started = asyncio.get_running_loop().time()
            health = self._ctx.health
            if to_fallback:
                self._buffer = AudioBuffer(self._ctx.config.max_command_seconds)
            if self._buffer is not None and health is not None and health.skip_flux():
                _LOGGER.info("Flux is down (%s): the command goes to the fallback", health.last_error)
            else:
                self._session = TurnSession(self._ctx.http, self._ctx.config, request, fmt.rate,
                                            on_partial=self._on_partial, pool=self._ctx.pool)
                self._session.start()
            self._answer_task = asyncio.create_task(self._answer_when_decided(self._session, request))
        except BaseException:
            self._release_gate()
            raise

    async def _stop(self) -> None:
        session = self._session
        if self._buffer is not None:
            self._buffer.end()
        if not self._answered:
            if session is not None:
                await session.finish()
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
        session, self._session = self._session, None
        task, self._answer_task = self._answer_task, None
        if self._buffer is not None and task is not None:
            task.cancel()  # the client left before the fallback answered: nobody waits for it
        self._buffer = None
        if session is not None:
            self._ctx.close_later(session)
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

    async def _answer_when_decided(self, session: TurnSession | None, request: TurnRequest) -> None:
        model = request.model
        result = await session.wait() if session is not None else None
        self._release_gate()  # the Flux stream closes now; the client may keep sending until AudioStop
        if (fallback := self._ctx.fallback) is not None and self._buffer is not None and self._ctx.health:
            buffer, language = self._buffer, request.language
            result = await answer_with_fallback(result, buffer, lambda audio: fallback.replay(audio, language),
                                                fallback_timeout=fallback.timeout, health=self._ctx.health,
                                                started=self._started)
        assert result is not None
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
        _log_command(model, result)

    def _answer_error(self, text: str, code: str) -> None:
        if not self._answered:
            self._answered = True
            self._send(Error(text=text, code=code).event())


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def _log_command(model: FluxModel, result: TurnResult) -> None:
    _LOGGER.info(
        "Command done: model=%s audio=%.2fs ended_by=%s%s text_chars=%d connect=%s first_text=%s finalize=%s total=%s",
        model.name,
        result.audio_seconds,
        result.ended_by.value,
        f"({result.trigger})" if result.trigger else "",
        len(result.text),
        _ms(result.connect_seconds),
        _ms(result.first_text_seconds),
        _ms(result.finalize_seconds),
        _ms(result.elapsed_seconds),
    )
