"""The Flux turn session: one voice command, from its first audio to its final text.

Used unchanged by the Wyoming server and by the Home Assistant entity. It takes PCM as it arrives, streams
it to Flux in 80 ms frames, follows the TurnInfo state, and resolves exactly once with a TurnResult.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import aiohttp

from .audio import AudioAdapter, flux_rate_for
from .flux import (
    Connected,
    FatalError,
    FluxError,
    FluxSocket,
    FluxStreamError,
    FluxTimeoutError,
    FluxWarning,
    StreamOptions,
    TurnInfo,
    UnknownMessage,
    connect,
    trim_keyterms,
)
from .models import FluxModel, language_hints
from .pool import WarmPool

_LOGGER = logging.getLogger(__name__)

UPDATE_INTERVAL = 0.24  # seconds of audio between Flux Updates
_TICK = 0.1  # how often the watchdog looks at the wall-clock bounds
_WALL_GRACE = 2.0  # wall-clock slack over an audio-time bound before we stop trusting Flux's clock
_EOT_GRACE = 1.0  # audio seconds past Flux's own eot_timeout before we end a turn Flux should have ended
_QUIET_AFTER_FORCE = 0.5  # with no turn open, how long Flux may stay silent after ForceEndTurn
_FORCE = "force"
_CONFIGURE_MAX_KEYTERMS = 100  # Configure takes at most 100 keyterms


class Ending(str, Enum):
    """What ended a command."""

    END_OF_TURN = "end_of_turn"  # Flux said the user was done
    FORCED = "forced"  # the audio ended first; we asked Flux for the final text
    NO_SPEECH = "no_speech"  # nothing was said within the no-speech bound
    MAX_LENGTH = "max_length"  # the command hit its length bound
    ERROR = "error"
    CANCELLED = "cancelled"  # closed by its owner (e.g. the client left) before it was decided


@dataclass(frozen=True)
class SessionConfig:
    """Connection settings and bounds shared by every command of a server or config entry."""

    url: str
    api_key: str = field(repr=False)
    eot_threshold: float | None = None
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int | None = None
    keyterms: tuple[str, ...] = ()
    end_on_flux_eot: bool = True  # False: the client's end of audio decides (Home Assistant's VAD mode)
    no_speech_timeout: float = 8.0
    max_command_seconds: float = 30.0
    connect_timeout: float = 3.0
    finalize_timeout: float = 2.0  # ForceEndTurn -> EndOfTurn
    stall_timeout: float = 3.0  # no message at all from a Flux stream that should be talking


@dataclass(frozen=True)
class TurnRequest:
    """What one command asks for."""

    model: FluxModel
    language: str | None = None
    keyterms: tuple[str, ...] = ()  # per-command terms, after the configured ones


@dataclass
class TurnResult:
    text: str
    ended_by: Ending
    language: str | None = None
    trigger: str | None = None  # Flux's own EndOfTurn trigger, when one came
    degraded: bool = False  # Flux went quiet; the text is the best heard, not a confirmed final
    error: FluxError | None = None
    audio_seconds: float = 0.0
    request_id: str | None = None
    connect_seconds: float | None = None  # start -> Flux stream open
    first_text_seconds: float | None = None  # start -> first partial text
    finalize_seconds: float | None = None  # end of audio (or EndOfTurn) -> result
    elapsed_seconds: float = 0.0  # start -> result


PartialCallback = Callable[[str], None]


def stream_options(config: SessionConfig, request: TurnRequest, sample_rate: int) -> StreamOptions:
    """The Flux query for a command. The warm pool opens its sockets with the same function, so a socket it
    holds fits a command exactly when the two agree."""
    return StreamOptions(
        model=request.model.name,
        sample_rate=sample_rate,
        eot_threshold=config.eot_threshold,
        eager_eot_threshold=config.eager_eot_threshold,
        eot_timeout_ms=config.eot_timeout_ms,
        keyterms=tuple(trim_keyterms([*config.keyterms, *request.keyterms])),
        language_hints=tuple(language_hints(request.model, request.language)),
    )


class TurnSession:
    """One command. Call start(), feed() audio as it comes, then wait() or finish(); always aclose()."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        config: SessionConfig,
        request: TurnRequest,
        sample_rate: int,
        on_partial: PartialCallback | None = None,
        pool: WarmPool | None = None,
    ) -> None:
        self._http = http
        self._pool = pool
        self._warm = False  # streaming on a socket the pool opened earlier
        self._confirmed = False  # Flux has answered about our audio: the socket is good
        self._replay: list[bytes | str] = []  # sent on a warm socket, until confirmed
        self._config = config
        self._request = request
        self._on_partial = on_partial
        self._loop = asyncio.get_running_loop()
        self._adapter = AudioAdapter(flux_rate_for(sample_rate))
        self._queue: asyncio.Queue[bytes | str] = asyncio.Queue()
        self._result: asyncio.Future[TurnResult] = self._loop.create_future()
        self._task: asyncio.Task[None] | None = None
        self._started_at = self._loop.time()
        self._audio_ended_at: float | None = None
        self._forcing: Ending | None = None  # why we asked for ForceEndTurn, once we have
        self._forced_at = 0.0
        self._force_sent_at: float | None = None
        self._last_message_at: float | None = None
        self._connected_at: float | None = None
        self._first_text_at: float | None = None
        self._request_id: str | None = None
        self._sent_seconds = 0.0  # audio seconds handed to Flux
        self._flux_seconds = 0.0  # audio seconds Flux says it has processed
        self._completed: list[str] = []  # finished turns (only more than one in client mode)
        self._turn_text = ""
        self._turn_active = False
        self._words_at = 0.0  # Flux's audio clock when the current turn last gained or changed words
        self._language: str | None = None
        self._last_partial = ""

    # ------------------------------------------------------------ public

    @property
    def done(self) -> bool:
        return self._result.done()

    @property
    def audio_seconds(self) -> float:
        return self._adapter.seconds_in

    def start(self) -> None:
        """Open the Flux stream in the background; audio fed meanwhile is queued, none is lost."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="flux turn session")

    def feed(self, audio: bytes, rate: int, width: int, channels: int) -> None:
        """Queue client audio. Raises AudioFormatError for audio that cannot be converted."""
        if self.done or self._audio_ended_at is not None or self._forcing is not None:
            return  # the command is decided: later audio is discarded
        room = self._config.max_command_seconds - self._adapter.seconds_in
        sample_frame = width * channels
        if len(audio) > room * rate * sample_frame:  # one huge chunk must not carry audio past the bound
            audio = audio[: max(0, int(room * rate)) * sample_frame]
        for frame in self._adapter.push(audio, rate, width, channels):
            self._queue.put_nowait(frame)
        if self._adapter.seconds_in >= self._config.max_command_seconds:
            _LOGGER.info("Command reached the %.0f s maximum; asking Flux for its final text",
                         self._config.max_command_seconds)
            self._force(Ending.MAX_LENGTH)

    async def wait(self) -> TurnResult:
        """The outcome, whenever it is decided (EndOfTurn, a bound, an error, or finish())."""
        return await asyncio.shield(self._result)

    async def finish(self) -> TurnResult:
        """The client's audio has ended: finalize the turn with what was heard and return the outcome."""
        if not self.done and self._audio_ended_at is None:
            self._audio_ended_at = self._loop.time()
            if self._forcing is None:
                self._force(Ending.FORCED)
        return await self.wait()

    async def aclose(self) -> None:
        """Stop everything and close the Flux stream (bounded); safe to call at any time, more than once."""
        if not self.done:
            self._resolve(self._outcome(Ending.CANCELLED))
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(self._config.finalize_timeout + 1.0):
                    await asyncio.shield(self._task)
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    # ------------------------------------------------------------ running

    def _options(self) -> StreamOptions:
        return stream_options(self._config, self._request, self._adapter.out_rate)

    async def _run(self) -> None:
        watchdog = asyncio.create_task(self._watch())
        try:
            use_warm = True
            while (socket := await self._open_unless_decided(use_warm)) is not None:
                try:
                    await self._stream(socket)
                    return
                except FluxError as err:
                    if not self._warm or self._confirmed:
                        raise
                    # The warm socket died before Flux confirmed any audio: open a new one and send it all again.
                    _LOGGER.info("Warm Flux connection failed before use (%s); reconnecting", err)
                    self._warm, use_warm = False, False
                    self._requeue_replay()
        except FluxError as err:
            self._fail(err)
        except Exception as err:  # never leave a command hanging on a bug or an odd library error
            _LOGGER.exception("Unexpected failure in the Flux session")
            self._fail(FluxStreamError(f"unexpected failure: {type(err).__name__}"))
        finally:
            watchdog.cancel()

    async def _open_unless_decided(self, use_warm: bool) -> FluxSocket | None:
        """A socket (warm if one fits, else a new handshake), or None if the command was decided meanwhile."""
        opening = asyncio.create_task(self._open(use_warm))
        await asyncio.wait([self._result, opening], return_when=asyncio.FIRST_COMPLETED)
        if not opening.done():  # decided before the socket opened (e.g. the client left)
            opening.cancel()
        try:
            socket = await opening
        except asyncio.CancelledError:
            return None
        if self.done:
            await socket.close()
            return None
        return socket

    async def _open(self, use_warm: bool) -> FluxSocket:
        options = self._options()
        if use_warm and self._pool is not None and (socket := await self._pool.take(options)) is not None:
            self._warm = True
            changes: dict[str, list[str]] = {}
            if options.keyterms != self._pool.options.keyterms:
                changes["keyterms"] = list(options.keyterms[:_CONFIGURE_MAX_KEYTERMS])
            if options.language_hints != self._pool.options.language_hints:
                changes["language_hints"] = list(options.language_hints)
            if changes:
                await socket.configure(**changes)
            return socket
        return await connect(
            self._http, self._config.url, self._config.api_key, options, timeout=self._config.connect_timeout
        )

    async def _stream(self, socket: FluxSocket) -> None:
        """Send and receive until the outcome is decided; raise the FluxError that broke the stream."""
        self._connected_at = self._last_message_at = self._loop.time()
        self._request_id = socket.request_id or self._request_id
        workers = [asyncio.create_task(self._send(socket)), asyncio.create_task(self._receive(socket))]
        try:
            await asyncio.wait([self._result, *workers], return_when=asyncio.FIRST_COMPLETED)
            if not self.done:  # a worker ended first: that is a failure we have not reported yet
                for worker in workers:
                    if worker.done() and not worker.cancelled() and worker.exception():
                        raise worker.exception()  # type: ignore[misc]
                raise FluxStreamError("Flux closed the stream before the turn ended")
        finally:
            await self._shutdown(socket, workers)

    def _requeue_replay(self) -> None:
        """Put everything sent on the dead warm socket back in front of the queue. Replay only happens on the
        first socket, before Flux confirmed anything, so the new socket starts with nothing sent."""
        items = [*self._replay]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        self._replay = []
        self._sent_seconds = 0.0
        self._force_sent_at = None
        for item in items:
            self._queue.put_nowait(item)

    async def _shutdown(self, socket: FluxSocket, workers: list[asyncio.Task[None]]) -> None:
        """CloseStream, let Flux close (bounded), then make sure the socket and workers are gone."""
        sender = workers[0] if workers else None
        if sender is not None:
            sender.cancel()
        with contextlib.suppress(FluxError, asyncio.CancelledError, TimeoutError):
            if not socket.closed:
                await socket.close_stream()
                if len(workers) > 1:
                    async with asyncio.timeout(1.0):
                        await asyncio.shield(workers[1])
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await socket.close()

    async def _send(self, socket: FluxSocket) -> None:
        while True:
            item = await self._queue.get()
            if self._warm and not self._confirmed:
                self._replay.append(item)
            if item == _FORCE:
                await socket.force_end_turn()
                self._force_sent_at = self._loop.time()
            elif isinstance(item, bytes):
                await socket.send_audio(item)
                self._sent_seconds += len(item) / (2 * self._adapter.out_rate)

    async def _receive(self, socket: FluxSocket) -> None:
        while (message := await socket.receive()) is not None:
            self._last_message_at = self._loop.time()
            if self.done:
                continue  # draining after CloseStream: the outcome is already decided
            if isinstance(message, TurnInfo):
                self._on_turn_info(message)
            elif isinstance(message, FatalError):
                raise FluxStreamError(f"Flux reported an error: {message.code}: {message.description}")
            elif isinstance(message, FluxWarning):
                _LOGGER.warning("Flux warning %s: %s", message.code, message.description)
                if self._forcing is not None and not self._turn_active:
                    self._resolve(self._outcome(self._forcing))  # e.g. ForceEndTurn with no active turn
            elif isinstance(message, UnknownMessage):
                _LOGGER.debug("Ignoring Flux message of type %s", message.type)
            elif isinstance(message, Connected):
                self._request_id = message.request_id or self._request_id

    def _on_turn_info(self, info: TurnInfo) -> None:
        if not self._confirmed:
            self._confirmed = True
            self._replay.clear()
        self._flux_seconds = max(self._flux_seconds, info.audio_window_end)
        if info.languages:
            self._language = info.languages[0]
        if info.event == "EndOfTurn":
            self._turn_active = False
            text = info.transcript.strip()
            if text:
                self._completed.append(text)
            self._turn_text = ""
            if self._forcing is not None and info.trigger == "manual":
                self._resolve(self._outcome(self._forcing, trigger=info.trigger))
            elif text and self._config.end_on_flux_eot:
                self._resolve(self._outcome(Ending.END_OF_TURN, trigger=info.trigger))
            # Otherwise keep listening: while we force, an earlier turn's EndOfTurn may still be in flight.
            return
        if info.event == "StartOfTurn" or info.transcript:
            self._turn_active = True  # an Update with text can come before any StartOfTurn
        if info.event == "StartOfTurn" or info.transcript.strip() != self._turn_text:
            self._words_at = info.audio_window_end
        self._turn_text = info.transcript.strip()
        self._report_partial()

    def _caught_up(self) -> bool:
        return self._queue.empty() and self._flux_seconds >= self._sent_seconds - UPDATE_INTERVAL - 0.01

    def _report_partial(self) -> None:
        text = self._text()
        if text and text != self._last_partial:
            self._last_partial = text
            if self._first_text_at is None:
                self._first_text_at = self._loop.time()
            if self._on_partial is not None:
                self._on_partial(text)

    def _force(self, reason: Ending) -> None:
        """Ask Flux to end the turn on what it heard (after the audio already queued)."""
        self._forcing = reason
        self._forced_at = self._loop.time()
        if last := self._adapter.flush():
            self._queue.put_nowait(last)
        self._queue.put_nowait(_FORCE)

    async def _watch(self) -> None:
        """Wall-clock bounds: every wait in a session ends, whatever Flux or the client do."""
        config = self._config
        while not self.done:
            await asyncio.sleep(_TICK)
            now = self._loop.time()
            age = now - self._started_at
            heard = bool(self._completed or self._turn_active or self._turn_text)
            if self._forcing is not None:
                if self._connected_at is None:
                    continue  # the connect timeout bounds this wait
                sent_at = self._force_sent_at
                if (sent_at is not None and not self._turn_active and self._caught_up()
                        and now - sent_at >= _QUIET_AFTER_FORCE):
                    # Flux has processed all our audio and no turn is open: nothing more is coming.
                    self._resolve(self._outcome(self._forcing))
                elif now - max(self._forced_at, self._connected_at) >= config.finalize_timeout:
                    self._give_best("Flux did not finalize the turn")
            elif not heard and (self._flux_seconds >= config.no_speech_timeout
                                or age >= config.no_speech_timeout + _WALL_GRACE):
                _LOGGER.info("No speech within %.1f s; ending the command", config.no_speech_timeout)
                self._resolve(self._outcome(Ending.NO_SPEECH))
            elif age >= config.max_command_seconds + _WALL_GRACE:
                self._force(Ending.MAX_LENGTH)
            elif (config.end_on_flux_eot and self._turn_active
                  and self._flux_seconds - self._words_at >= (config.eot_timeout_ms or 5000) / 1000 + _EOT_GRACE):
                _LOGGER.warning("Flux did not end the turn after %.1f s without new words; forcing the end",
                                self._flux_seconds - self._words_at)
                self._force(Ending.FORCED)
            elif (self._last_message_at is not None and now - self._last_message_at >= config.stall_timeout
                  and self._sent_seconds - self._flux_seconds >= 1.0):
                self._give_best("Flux stopped sending results")

    def _give_best(self, why: str) -> None:
        """Flux is alive but silent: the honest answer is the best text heard, or an error if there is none."""
        if self._text():
            _LOGGER.warning("%s; answering with the text heard so far", why)
            self._resolve(self._outcome(self._forcing or Ending.FORCED, degraded=True))
        else:
            self._fail(FluxTimeoutError(f"{why} within the time allowed"))

    # ------------------------------------------------------------ outcome

    def _text(self) -> str:
        return " ".join([*self._completed, self._turn_text]).strip()

    def _outcome(self, ended_by: Ending, **extra: object) -> TurnResult:
        now = self._loop.time()
        text = "" if ended_by in (Ending.ERROR, Ending.NO_SPEECH, Ending.CANCELLED) else self._text()
        ended_at = self._audio_ended_at if ended_by is Ending.FORCED else None
        result = TurnResult(
            text=text,
            ended_by=ended_by,
            language=self._language,
            audio_seconds=round(self._adapter.seconds_in, 3),
            request_id=self._request_id,
            connect_seconds=None if self._connected_at is None else self._connected_at - self._started_at,
            first_text_seconds=None if self._first_text_at is None else self._first_text_at - self._started_at,
            finalize_seconds=None if ended_at is None else now - ended_at,
            elapsed_seconds=now - self._started_at,
        )
        for key, value in extra.items():
            setattr(result, key, value)
        return result

    def _fail(self, error: FluxError) -> None:
        self._resolve(self._outcome(Ending.ERROR, error=error))

    def _resolve(self, result: TurnResult) -> None:
        if not self._result.done():
            self._result.set_result(result)
