"""The turn session: one voice command, from its first audio to its final text, on Flux or Nova-3.

Used unchanged by the Wyoming server and by the Home Assistant entity. The I/O lives here: it takes PCM as it
arrives, streams it in 80 ms frames (on a warm socket when one fits, replaying it if that socket turns out
dead), and feeds what happens to the turn's state machine (state.py), which decides. What differs between the
two APIs (how to connect, how to ask for the final text, how messages become the state machine's inputs) is
the backend's (backend.py). Resolves exactly once.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from ..common.tasks import cancel, keep
from ..deepgram.errors import DeepgramError, DeepgramStreamError
from ..deepgram.flux import Connected, FluxOptions, TurnInfo
from ..deepgram.models import language_mismatch
from ..deepgram.nova import Metadata, NovaOptions, Results
from ..deepgram.pool import WarmPool
from ..deepgram.stream import DeepgramSocket, UnknownMessage
from .audio import FRAME_SECONDS, AudioAdapter, flux_rate_for
from .backend import EARLY_ENDPOINTING_MS, backend_for, stream_options
from .completion import EARLY_TRIGGER, CompletionCheck
from .request import PartialCallback, SessionConfig, TurnRequest, TurnResult
from .state import MAX_TEXT_CHARS, Bounds, Check, Decision, Ending, ForceTurn, Step, TurnState

__all__ = ["Ending", "PartialCallback", "SessionConfig", "TurnRequest", "TurnResult", "TurnSession", "stream_options"]

_LOGGER = logging.getLogger(__name__)

_TICK = 0.1  # how often the watchdog looks at the wall-clock bounds
_KEEP_ALIVE = "keep-alive"
_FORCE = "force"
_SILENCE = "silence"
_CLOSE = "close"
_INCOMPLETE_GRACE = 0.5  # seconds past Nova-3's utterance end before unfinished words end by our own clock
_SILENCE_MARGIN = 0.3  # audio seconds beyond eot_timeout, so Flux's timeout surely fires
_SILENCE_WALL = 0.8  # wall seconds the trailing silence is spread over: well within finalize_timeout, and
# slow enough that Flux's model usually ends the turn before all of it is sent (and billed)


def next_tick(now: float, tick: float = _TICK) -> float:
    """The first point of the grid of `tick` seconds that is at least half a tick after `now`."""
    when = (now // tick + 1) * tick
    if when - now < tick / 2:  # just before a grid point (or float rounding put us on it): the next one
        when += tick
    return when


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
        completion: CompletionCheck | None = None,
        on_resumed: Callable[[], None] | None = None,
    ) -> None:
        self._http = http
        # Early answers: the check is asked at each sign of the end (Flux's EagerEndOfTurn; on Nova-3 a short
        # endpoint), only when it can answer as the command starts: otherwise the query is exactly as without it.
        # With the client's end of speech (Home Assistant's VAD) nothing ends early: no check, no change to the query.
        self._check = completion if config.early_answer and config.end_on_flux_eot else None
        self._notes: list[str] = []
        self._backend = backend_for(request.model, config, self._notes)
        # (Flux has its own end of turn: an answer that is not "complete" leaves the end to it.)
        self._check_ready = self._check is not None and self._check.ready()
        self._nova_check = self._check_ready and self._backend.marks_pauses
        self._checks: set[asyncio.Task[None]] = set()
        self._on_resumed = on_resumed
        self._resumed = False
        self._pool = pool
        self._warm = False  # streaming on a socket the pool opened earlier
        self._billed = 0.0  # seconds of audio sent to Flux on every stream of this command (TurnResult.billed_seconds)
        self._sending = 0.0  # seconds of the frame being sent now
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
        self._watchdog: asyncio.TimerHandle | None = None  # while _run runs
        self._state = TurnState(
            Bounds(config.end_on_flux_eot, config.no_speech_timeout, config.max_command_seconds,
                   self._backend.end_timeout(), config.finalize_timeout, config.stall_timeout,
                   check_endpoints=self._nova_check,
                   endpoint_wait=max(0, config.endpointing_ms - EARLY_ENDPOINTING_MS) / 1000,
                   incomplete_wait=config.utterance_end_ms / 1000 + _INCOMPLETE_GRACE),
            self._loop.time(),
        )
        self._audio_ended_at: float | None = None
        # (audio seconds queued once this frame is, when it arrived) for each frame of client audio: turns the
        # API's audio clock (where speech ended) into the time that audio reached us
        self._arrivals: list[tuple[float, float]] = []
        self._first_text_at: float | None = None
        self._request_id: str | None = None
        self._close_asked = False  # we sent CloseStream: a close now is the answer, not a failure
        self._sent_at: float | None = None  # when the open socket was last sent anything; None while none is open
        self._last_partial = ""
        if (why := language_mismatch(request.model, request.language)) is not None:
            _LOGGER.warning("%s", why)
            self._notes.append(f"language: {why}")

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
        if not self._taking_audio:
            return  # the command is decided: later audio is discarded
        room = self._config.max_command_seconds - self._adapter.seconds_in
        sample_frame = width * channels
        if len(audio) > room * rate * sample_frame:  # one huge chunk must not carry audio past the bound
            audio = audio[: max(0, int(room * rate)) * sample_frame]
        for frame in self._adapter.push(audio, rate, width, channels):
            self._queue_audio(frame)
        if self._adapter.seconds_in >= self._config.max_command_seconds:
            _LOGGER.info("Command reached the %.0f s maximum; asking Flux for its final text",
                         self._config.max_command_seconds)
            self._force(Ending.MAX_LENGTH)

    def audio_needed(self) -> int:
        """Client bytes that would complete the next Flux frame; 0 once the command takes no more audio."""
        return self._adapter.input_needed() if self._taking_audio else 0

    @property
    def _taking_audio(self) -> bool:
        """Neither decided, nor ended by the client, nor being forced to an end."""
        return not self.done and self._audio_ended_at is None and self._state.forcing is None

    async def wait(self) -> TurnResult:
        """The outcome, whenever it is decided (EndOfTurn, a bound, an error, or finish())."""
        return await asyncio.shield(self._result)

    async def finish(self) -> TurnResult:
        """The client's audio has ended: finalize the turn with what was heard and return the outcome."""
        if not self.done and self._audio_ended_at is None:
            self._audio_ended_at = self._loop.time()
            self._force(Ending.FORCED)
        return await self.wait()

    async def aclose(self) -> None:
        """Stop everything and close the Flux stream (bounded); safe to call at any time, more than once."""
        self._apply(Decision(Ending.CANCELLED))
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(self._config.finalize_timeout + 1.0):
                    await asyncio.shield(self._task)
            if not self._task.done():
                await cancel(self._task)
        for check in list(self._checks):  # an ask still running serves the cache, not this command
            await cancel(check)

    # ------------------------------------------------------------ running

    def _options(self) -> FluxOptions | NovaOptions:
        options: FluxOptions | NovaOptions = self._backend.options(
            self._request, self._adapter.out_rate, early=self._check_ready, nova_check=self._nova_check)
        return options

    async def _run(self) -> None:
        self._schedule_watch()
        try:
            use_warm = True
            while (socket := await self._open_unless_decided(use_warm)) is not None:
                try:
                    await self._stream(socket)
                    return
                except DeepgramError as err:
                    if not self._warm or self._confirmed:
                        raise
                    # The warm socket died before Flux confirmed any audio: open a new one and send it all again.
                    _LOGGER.info("Warm Flux connection failed before use (%s); reconnecting", err)
                    self._warm, use_warm = False, False
                    self._requeue_replay()
        except DeepgramError as err:
            self._apply(self._state.failed(err, str(err)))
        except Exception as err:  # never leave a command hanging on a bug or an odd library error
            _LOGGER.exception("Unexpected failure in the Flux session")
            self._apply(self._state.failed(None, f"unexpected failure: {type(err).__name__}"))
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

    async def _open_unless_decided(self, use_warm: bool) -> DeepgramSocket[Any] | None:
        """A socket (warm if one fits, else a new handshake), or None if the command was decided meanwhile."""
        opening = asyncio.create_task(self._open(use_warm))
        await asyncio.wait([self._result, opening], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
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

    async def _open(self, use_warm: bool) -> DeepgramSocket[Any]:
        options = self._options()
        if (use_warm and self._backend.warm_pool and self._pool is not None and isinstance(options, FluxOptions)
                and (socket := await self._pool.take(options)) is not None):
            self._warm = True
            return socket
        opened: DeepgramSocket[Any] = await self._backend.connect(self._http, options, self._config.connect_timeout)
        return opened

    async def _stream(self, socket: DeepgramSocket[Any]) -> None:
        """Send and receive until the outcome is decided; raise the DeepgramError that broke the stream."""
        self._state.connected(self._loop.time())
        self._request_id = socket.request_id or self._request_id
        self._sent_at = self._loop.time()
        workers = [asyncio.create_task(self._send(socket)), asyncio.create_task(self._receive(socket))]
        try:
            await asyncio.wait([self._result, *workers], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
            if not self.done:  # a worker ended first: that is a failure we have not reported yet
                for worker in workers:
                    if worker.done() and not worker.cancelled() and worker.exception():
                        raise worker.exception()  # type: ignore[misc]
                raise DeepgramStreamError("Deepgram closed the stream before the command ended")
        finally:
            self._sent_at = None
            await self._shutdown(socket, workers)

    def _requeue_replay(self) -> None:
        """Put everything sent on the dead warm socket back in front of the queue. Replay only happens on the
        first socket, before Flux confirmed anything, so the new socket starts with nothing sent."""
        items = [*self._replay]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        self._replay = []
        self._close_asked = False
        self._state.restart_stream()
        for item in items:
            self._queue.put_nowait(item)

    async def _shutdown(self, socket: DeepgramSocket[Any], workers: list[asyncio.Task[None]]) -> None:
        """CloseStream, let Flux close (bounded), then make sure the socket and workers are gone."""
        sender = workers[0] if workers else None
        if sender is not None:
            sender.cancel()
        with contextlib.suppress(DeepgramError, asyncio.CancelledError, TimeoutError):
            if not socket.closed:
                if not self._close_asked:
                    await socket.close_stream()
                if len(workers) > 1:
                    async with asyncio.timeout(1.0):
                        await asyncio.shield(workers[1])
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await socket.close()

    async def _send(self, socket: DeepgramSocket[Any]) -> None:
        while True:
            item = await self._queue.get()
            self._sent_at = self._loop.time()
            if self._warm and not self._confirmed:
                self._replay.append(item)
            if item == _FORCE:
                await self._backend.ask_final(socket)
                self._state.force_sent(self._loop.time())
            elif item == _SILENCE:
                await self._send_silence(socket)
            elif item == _CLOSE:
                self._close_asked = True
                await socket.close_stream()
                self._state.force_sent(self._loop.time())
            elif item == _KEEP_ALIVE:
                await self._backend.keep_alive(socket)
            elif isinstance(item, bytes):
                if self.done:
                    continue  # the answer is decided: more audio would only be billed
                seconds = len(item) / (2 * self._adapter.out_rate)
                await self._send_billed(socket, item, seconds)
                self._state.audio_sent(seconds)

    def _silence_frames(self) -> int:
        return round((self._config.eot_timeout + _SILENCE_MARGIN) / FRAME_SECONDS)

    async def _send_billed(self, socket: DeepgramSocket[Any], frame: bytes, seconds: float) -> None:
        """Send a frame and count it as received once sent; while it is on its way, an outcome decided meanwhile
        counts it too (it reaches Flux all the same)."""
        self._sending = seconds
        try:
            await socket.send_audio(frame)
            self._billed += seconds
        finally:
            self._sending = 0.0

    async def _send_silence(self, socket: DeepgramSocket[Any]) -> None:
        """Flux's eot_timeout in silence, faster than real time; cancelled with the sender once the turn ends."""
        frame = bytes(self._adapter.frame_bytes)
        count = self._silence_frames()
        for _ in range(count):
            if self.done:
                return
            await self._send_billed(socket, frame, FRAME_SECONDS)
            self._state.audio_sent(FRAME_SECONDS)
            await asyncio.sleep(_SILENCE_WALL / count)

    async def _receive(self, socket: DeepgramSocket[Any]) -> None:
        backend = self._backend
        while (message := await socket.receive()) is not None:
            self._state.message(self._loop.time())
            if self.done:
                self._watch_after_answer(message)
                continue  # draining after CloseStream: the outcome is already decided
            if backend.confirms(message) and not self._confirmed:
                self._confirmed = True
                self._replay.clear()
            if isinstance(message, (Connected, Metadata)):
                self._request_id = message.request_id or self._request_id
            elif isinstance(message, UnknownMessage):
                _LOGGER.debug("Ignoring %s message of type %s", backend.name, message.type)
            self._apply(backend.handle(message, self._state, self._loop.time()))  # raises on a fatal message
            self._report_partial()
        if not self.done:
            if self._close_asked:
                self._apply(self._state.stream_closed(True))
            else:
                raise backend.stream_error(socket)

    def _report_partial(self) -> None:
        text = self._state.text
        if text and text != self._last_partial:
            self._last_partial = text
            if self._first_text_at is None:
                self._first_text_at = self._loop.time()
            if self._on_partial is not None:
                self._on_partial(text)

    def _queue_audio(self, frame: bytes) -> None:
        self._queue.put_nowait(frame)
        self._state.audio_queued(len(frame) / (2 * self._adapter.out_rate))
        self._arrivals.append((self._state.queued, self._loop.time()))

    def _arrived(self, audio_time: float) -> float:
        """When the client's audio at `audio_time` (the API's clock: seconds of our audio from the start) reached
        the session: the arrival of the frame that holds it (the last one, for a time past them all)."""
        index = bisect.bisect_left(self._arrivals, audio_time - 1e-6, key=lambda arrival: arrival[0])
        return self._arrivals[min(index, len(self._arrivals) - 1)][1] if self._arrivals else self._state.started_at

    def _force(self, reason: Ending) -> None:
        """Ask Flux to end the turn on what it heard (after the audio already queued): ForceEndTurn, or on an
        endpoint that lacks it, Flux's own eot_timeout in silence (sent faster than real time), then CloseStream."""
        if self._state.forcing is not None:
            return
        if last := self._adapter.flush():
            self._queue_audio(last)
        by_silence = self._backend.ends_by_silence()
        self._state.force(reason, self._loop.time(), by_silence=by_silence)
        if not by_silence:
            self._queue.put_nowait(_FORCE)
            if self._backend.close_after_ask():
                self._queue.put_nowait(_CLOSE)
            return
        self._state.audio_queued(self._silence_frames() * FRAME_SECONDS)
        self._queue.put_nowait(_SILENCE)
        self._queue.put_nowait(_CLOSE)

    def _schedule_watch(self) -> None:
        """The next watchdog tick, on a grid of _TICK shared by every command, so all their ticks run in one
        wakeup of the event loop instead of one wakeup each. A timer callback rather than a sleeping task: it
        runs ten times a second per command."""
        self._watchdog = self._loop.call_at(next_tick(self._loop.time()), self._watch)

    def _watch(self) -> None:
        """The wall-clock bounds, every tick until decided."""
        if self.done:
            return
        try:
            now = self._loop.time()
            self._apply(self._state.tick(now))
            self._keep_alive(now)
        finally:
            if not self.done and self._watchdog is not None:
                self._schedule_watch()

    def _keep_alive(self, now: float) -> None:
        """While the client's audio pauses, tell an API that closes idle streams that we are still here: Nova-3
        closes a stream that gets neither audio nor a text message for 10 s."""
        if (self._backend.keeps_alive and self._sent_at is not None and self._taking_audio
                and self._queue.empty() and now - self._sent_at >= self._config.keep_alive_seconds):
            self._sent_at = now  # one at a time
            self._queue.put_nowait(_KEEP_ALIVE)

    # ------------------------------------------------------------ outcome

    def _apply(self, step: Step) -> None:
        if isinstance(step, ForceTurn):
            self._force(step.reason)
        elif isinstance(step, Check):
            keep(self._ask(step.text), self._checks, "completion check")
        elif step is not None and not self.done:
            self._result.set_result(self._outcome(step))

    async def _ask(self, text: str) -> None:
        """Whether the words are a complete command (bounded: completion.py); the state machine decides."""
        assert self._check is not None
        complete = await self._check.complete(text, self._request.language)
        if not self.done:
            self._apply(self._state.checked(text, complete, self._loop.time()))

    def _watch_after_answer(self, message: object) -> None:
        """After an early answer, the stream drains what Deepgram still had: if the speaker went on (Flux's
        TurnResumed or a new turn, Nova-3's new words), the early answer cut the command. Said once, counted."""
        result = self._result.result()
        if self._resumed or result.trigger != EARLY_TRIGGER:
            return
        went_on = (isinstance(message, TurnInfo) and message.event in ("TurnResumed", "StartOfTurn")
                   or isinstance(message, Results) and bool(message.transcript.strip()))
        if went_on:
            self._resumed = True
            _LOGGER.info("The speaker went on after an early answer (%s): that command was cut short",
                         result.trigger)
            if self._on_resumed is not None:
                self._on_resumed()

    def _outcome(self, decision: Decision) -> TurnResult:
        now = self._loop.time()
        if decision.degraded:
            _LOGGER.warning("%s; answering with the text heard so far", decision.reason)
            self._notes.append(f"degraded: {decision.reason}")
        if self._state.text_cut:
            self._notes.append(f"text-cut: kept the first {MAX_TEXT_CHARS} characters")
        ended_at = self._audio_ended_at if decision.ended_by is Ending.FORCED else None
        started = self._state.started_at
        connected = self._state.connected_at
        return TurnResult(
            text=decision.text,
            ended_by=decision.ended_by,
            language=self._state.language,
            trigger=decision.trigger,
            degraded=decision.degraded,
            error=decision.error,
            audio_seconds=round(self._adapter.seconds_in, 3),
            billed_seconds=round(self._billed + self._sending, 3),
            request_id=self._request_id,
            connect_seconds=None if connected is None else connected - started,
            first_text_seconds=None if self._first_text_at is None else self._first_text_at - started,
            finalize_seconds=None if ended_at is None else now - ended_at,
            elapsed_seconds=now - started,
            speech_end_seconds=(None if not decision.text or (end := self._state.speech_end) is None
                                else now - self._arrived(end)),
            warm=self._warm,
            notes=tuple(self._notes),
        )
