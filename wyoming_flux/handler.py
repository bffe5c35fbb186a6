"""Wyoming event handler: one client connection, any number of commands, each a TurnSession."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field

import aiohttp
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler

from . import __version__
from .audio import AudioFormatError, check_format
from .models import FluxModel, pick_model
from .pool import WarmPool
from .session import Ending, SessionConfig, TurnRequest, TurnResult, TurnSession
from .wire import BadEvent, EventReader

_LOGGER = logging.getLogger(__name__)

ATTRIBUTION = Attribution(name="Deepgram", url="https://deepgram.com")
PROGRAM_NAME = "deepgram-flux"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ServerSettings:
    """What every connection of one server shares."""

    session: SessionConfig
    models: tuple[FluxModel, ...]
    max_sessions: int | None = None  # concurrent commands (Flux streams); None = no limit
    allow: tuple[IPNetwork, ...] = field(default=())  # client networks; empty = everyone
    warm_connections: int = 0  # Flux sockets kept open for the next commands
    warm_max_age: float = 8.0  # seconds before a waiting socket is replaced
    warm_window: float | None = None  # keep warm sockets only this long after a command; None: always


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


def client_allowed(peer: object, allow: tuple[IPNetwork, ...]) -> bool:
    """True if no allow list is set, the client is on a Unix socket, or its address is in a listed network."""
    if not allow or not isinstance(peer, tuple) or not peer:
        return True
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow)


def build_info(settings: ServerSettings) -> Info:
    """The Describe answer. Built once at start-up: Describe must never touch the network."""
    return Info(
        asr=[
            AsrProgram(
                name=PROGRAM_NAME,
                attribution=ATTRIBUTION,
                installed=True,
                description="Deepgram Flux streaming speech-to-text with model-detected end of turn",
                version=__version__,
                models=[
                    AsrModel(
                        name=model.name,
                        attribution=ATTRIBUTION,
                        installed=True,
                        description=model.description,
                        version=None,
                        languages=list(model.languages),
                    )
                    for model in settings.models
                ],
                supports_transcript_streaming=True,
                # Said explicitly: wyoming's default is True, which would make Home Assistant run its own VAD.
                requires_external_vad=not settings.session.end_on_flux_eot,
                prefers_auto_gain_enabled=True,
                prefers_noise_reduction_enabled=False,
            )
        ]
    )


class _ChunkStream:
    """Turns Flux's revised-in-place transcripts into append-only deltas (Wyoming clients concatenate).

    Only words that are not the last one are sent while the turn goes on (the last word is still changing);
    once Flux revises a word already sent, partials stop, and the final Transcript carries the truth.
    """

    def __init__(self) -> None:
        self.started = False
        self._sent: list[str] = []
        self._diverged = False

    def delta(self, text: str, final: bool = False) -> str:
        words = text.split()
        if self._diverged or words[: len(self._sent)] != self._sent:
            self._diverged = True
            return ""
        stable = words if final else words[:-1]
        new = stable[len(self._sent) :]
        if not new:
            return ""
        chunk = (" " if self._sent else "") + " ".join(new)
        self._sent.extend(new)
        return chunk


class FluxEventHandler(AsyncEventHandler):
    """Serves Describe and Transcribe/Audio* for one Wyoming client."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        settings: ServerSettings,
        info: Info,
        http: aiohttp.ClientSession,
        gate: SessionGate | None = None,
        pool: WarmPool | None = None,
    ) -> None:
        super().__init__(reader, writer)
        self._settings = settings
        self._gate = gate or SessionGate(None)
        self._pool = pool
        self._holds_gate = False
        self._info_event = info.event()
        self._http = http
        self._transcribe: Transcribe | None = None
        self._session: TurnSession | None = None
        self._answered = False
        self._chunks = _ChunkStream()
        self._outbox: asyncio.Queue[Event] = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._write_loop(), name="wyoming writer")
        self._answer_task: asyncio.Task[None] | None = None
        self._language: str | None = None

    # ------------------------------------------------------------ events

    async def run(self) -> None:
        """Like wyoming's loop, but with bounded reads and a clear Error for what cannot be read."""
        try:
            peer = self.writer.get_extra_info("peername")
            if not client_allowed(peer, self._settings.allow):
                _LOGGER.warning("Refused a client from %s: not in --allow", peer[0] if peer else "?")
                self._send(Error(text="This client is not allowed to use this server", code="client-not-allowed").event())
                return
            events = EventReader(self.reader)
            while True:
                try:
                    event = await events.read()
                except BadEvent as err:
                    _LOGGER.warning("Closing a connection that sent a bad event: %s", err)
                    self._send(Error(text=f"Bad event: {err}", code="bad-event").event())
                    return
                if event is None or not await self._dispatch(event):
                    return
        finally:
            await self.disconnect()
            self.writer.close()

    async def _dispatch(self, event: Event) -> bool:
        try:
            return await self.handle_event(event)
        except (KeyError, TypeError, ValueError) as err:  # a known event type with missing or wrong fields
            _LOGGER.warning("Ignoring malformed %s event: %s", event.type, err)
            self._send(Error(text=f"Malformed {event.type} event", code="bad-event").event())
            return True

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            self._send(self._info_event)
        elif Transcribe.is_type(event.type):
            self._transcribe = Transcribe.from_event(event)
        elif AudioStart.is_type(event.type):
            await self._start(AudioStart.from_event(event))
        elif AudioChunk.is_type(event.type):
            await self._feed(event)
        elif AudioStop.is_type(event.type):
            await self._stop()
        else:
            _LOGGER.debug("Ignoring event %s", event.type)
        return True

    async def _start(self, start: AudioStart) -> None:
        await self._end_command()  # a new stream replaces one the client abandoned
        self._answered = False
        try:
            check_format(start.rate, start.width, start.channels)
        except AudioFormatError as err:
            self._answer_error(f"Audio format not supported: {err}", "audio-format")
            return
        transcribe = self._transcribe or Transcribe()
        self._transcribe = None  # a Transcribe applies to the one command that follows it
        if not self._gate.enter():
            _LOGGER.warning("Refused a command: %d commands are already running (--max-sessions)", self._gate.active)
            self._answer_error("The server is at its limit of concurrent commands; try again shortly", "server-busy")
            return
        self._holds_gate = True
        model = pick_model(list(self._settings.models), transcribe.name, transcribe.language)
        request = TurnRequest(
            model=model,
            language=transcribe.language,
            keyterms=tuple([*(transcribe.transcript_names or ()), *(transcribe.transcript_terms or ())]),
        )
        self._chunks = _ChunkStream()
        self._language = transcribe.language
        self._session = TurnSession(
            self._http, self._settings.session, request, start.rate, on_partial=self._on_partial, pool=self._pool
        )
        self._session.start()
        self._answer_task = asyncio.create_task(self._answer_when_decided(self._session, model))

    async def _feed(self, chunk: Event) -> None:
        if self._session is None or self._answered:
            return  # no command open, or it is already answered: discard until AudioStop
        data = chunk.data  # read directly: this runs every 10 ms per client
        try:
            self._session.feed(chunk.payload or b"", data["rate"], data["width"], data["channels"])
        except AudioFormatError as err:
            self._answer_error(f"Audio format not supported: {err}", "audio-format")
            await self._end_command()

    async def _stop(self) -> None:
        session = self._session
        if session is None:
            return
        if not self._answered:
            await session.finish()
            if self._answer_task is not None:
                await self._answer_task  # the answer is written before we read the next event
        await self._end_command()

    def _release_gate(self) -> None:
        if self._holds_gate:
            self._holds_gate = False
            self._gate.leave()

    async def _end_command(self) -> None:
        self._release_gate()
        session, self._session = self._session, None
        task, self._answer_task = self._answer_task, None
        if session is not None:
            await session.aclose()
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

    async def _answer_when_decided(self, session: TurnSession, model: FluxModel) -> None:
        result = await session.wait()
        self._release_gate()  # the Flux stream closes now; the client may keep sending until AudioStop
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
        self._send(Transcript(text=result.text, language=result.language).event())
        if self._chunks.started:
            self._send(TranscriptStop().event())
        _log_command(model, result)

    def _answer_error(self, text: str, code: str) -> None:
        if not self._answered:
            self._answered = True
            self._send(Error(text=text, code=code).event())

    # ------------------------------------------------------------ writing

    def _send(self, event: Event) -> None:
        self._outbox.put_nowait(event)

    async def _write_loop(self) -> None:
        """One writer, so events keep their order whoever queues them."""
        while True:
            event = await self._outbox.get()
            try:
                await self.write_event(event)
            except (ConnectionError, RuntimeError):
                return  # the client is gone; disconnect() cleans up

    async def disconnect(self) -> None:
        await self._end_command()
        # Let what was queued go out (bounded), then stop the writer.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while not self._outbox.empty() and not self._writer_task.done():
                    await asyncio.sleep(0.01)
        self._writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer_task


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
