"""The local fallback: when Flux cannot answer, the command's audio goes to another speech-to-text service.

Shared by the Wyoming server (the fallback is a Wyoming server) and the integration (another STT entity): both
keep the command's audio in an AudioBuffer from its first chunk, track Flux's health in one DeepgramHealth, and
let `answer_with_fallback()` decide between Flux's result and the fallback's transcript. Only the replay itself differs.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from ..deepgram.errors import DeepgramUnavailableError
from .request import TurnResult
from .state import Ending

_LOGGER = logging.getLogger(__name__)
_STRAGGLERS: set[asyncio.Task[tuple[str, str | None]]] = set()

FALLBACK_GRACE = 3.0  # seconds the fallback may take after the audio ended, on top of its own time
STOP_TIMEOUT = 1.0  # seconds a cancelled replay may take to close its connection before the answer goes out
# Failures that say Flux cannot take commands now: while they last, commands skip Flux.
_DOWN_CODES = frozenset({"flux-unavailable", "flux-timeout", "flux-rate-limited", "flux-no-credit",
                         "flux-request-timeout", "flux-stream", "flux-idle-timeout"})


@dataclass(frozen=True)
class Chunk:
    audio: bytes
    rate: int
    width: int
    channels: int


class AudioBuffer:
    """The client's audio of one command as it came, up to `max_seconds` (the max-command bound)."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.chunks: list[Chunk] = []
        self.seconds = 0.0
        self.ended = asyncio.Event()  # the client's audio ended, or the buffer is full
        self._grew = asyncio.Event()  # wakes stream() for a new chunk or the end

    @property
    def full(self) -> bool:
        return self.seconds >= self.max_seconds - 1e-6  # float sums of chunk lengths drift

    def append(self, audio: bytes, rate: int, width: int, channels: int) -> None:
        frame = width * channels
        if self.full or not audio or frame <= 0 or rate <= 0:
            return
        room = round((self.max_seconds - self.seconds) * rate) * frame
        audio = audio[:room]
        if not audio:
            self.end()
            return
        self.chunks.append(Chunk(audio, rate, width, channels))
        self.seconds += len(audio) / (rate * frame)
        self._grew.set()
        if self.full:
            self.end()

    def end(self) -> None:
        self.ended.set()
        self._grew.set()

    async def stream(self) -> AsyncIterator[Chunk]:
        """Every chunk so far, then each new one as it comes, until the audio ends: a fallback that ends the
        command itself (e.g. wyoming-faster-whisper --vad-endpointing) can answer before the client stops."""
        sent = 0
        while True:
            self._grew.clear()  # before looking, so a chunk added while we yield is not missed
            while sent < len(self.chunks):
                yield self.chunks[sent]
                sent += 1
            if self.ended.is_set():
                return
            await self._grew.wait()


class DeepgramHealth:
    """Whether Flux can take commands. After a failure that says it cannot, Flux is tried again after a
    backoff (doubling up to `max_backoff`); commands in between go straight to the fallback."""

    def __init__(self, first_backoff: float = 2.0, max_backoff: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._first, self._max, self._clock = first_backoff, max_backoff, clock
        self._backoff = 0.0
        self._retry_at = 0.0
        self.last_error: str | None = None

    @property
    def down(self) -> bool:
        return self._backoff > 0

    def skip_flux(self) -> bool:
        """True while Flux is down and not yet due for another try."""
        return self.down and self._clock() < self._retry_at

    def retry_in(self) -> float:
        return max(0.0, self._retry_at - self._clock())

    def observe(self, result: TurnResult) -> None:
        error = result.error
        if result.ended_by is Ending.ERROR and error is not None and error.code in _DOWN_CODES:
            self._backoff = min(self._max, self._backoff * 2) if self._backoff else self._first
            self._retry_at = self._clock() + self._backoff
            if not self.last_error:
                _LOGGER.warning("Deepgram cannot take commands (%s); commands go to the fallback, Deepgram is "
                                "tried again in %.0f s", error.code, self._backoff)
            self.last_error = error.code
        elif result.ended_by is not Ending.CANCELLED and not result.degraded and result.error is None:
            if self.down:
                _LOGGER.info("Deepgram answers again; commands go to Deepgram")
            self._backoff, self._retry_at, self.last_error = 0.0, 0.0, None


def wants_fallback(result: TurnResult) -> bool:
    """Flux failed: an error, or a stream that broke before EndOfTurn (its text is only what it heard)."""
    return result.ended_by is Ending.ERROR or (result.degraded and result.ended_by is not Ending.CANCELLED)


class FallbackError(Exception):
    """The fallback could not transcribe: a short reason, safe to log."""


Replay = Callable[[AudioBuffer], Coroutine[Any, Any, tuple[str, str | None]]]  # -> (text, language)


async def answer_with_fallback(flux: TurnResult | None, buffer: AudioBuffer, replay: Replay, *, fallback_timeout: float,
                 health: DeepgramHealth, started: float) -> TurnResult:
    """The command's outcome: Flux's result when Flux answered, else the fallback's transcript.

    `flux` is None when the command skipped Flux. The fallback hears the audio buffered so far, then the rest
    as it comes; it may answer before the audio ends, and has `fallback_timeout` + 3 s after it ends (the end
    is bounded by the max-command length from `started`, a loop time). Should it fail too, the answer is
    Flux's best text, or Flux's error: nothing is lost, nothing hangs."""
    if flux is not None:
        health.observe(flux)
        if not wants_fallback(flux):
            return flux
    loop = asyncio.get_running_loop()
    why = flux.error.code if flux is not None and flux.error else ("degraded" if flux else "flux-down")
    replaying = asyncio.create_task(replay(buffer), name="fallback replay")
    ended = asyncio.create_task(buffer.ended.wait())
    try:
        wall = buffer.max_seconds + FALLBACK_GRACE - (loop.time() - started)
        await asyncio.wait([replaying, ended], timeout=max(0.0, wall), return_when=asyncio.FIRST_COMPLETED)
        if not replaying.done():
            buffer.end()  # past the bound (a client sending slower than real time): no more audio goes out
        ended_at = loop.time()
        # Waited on, never awaited: a replay that is slow to give up cannot hold the answer past its bound.
        await asyncio.wait([replaying], timeout=fallback_timeout + FALLBACK_GRACE)
        if not replaying.done():
            raise TimeoutError
        text, language = replaying.result()
    except Exception as err:  # whatever the fallback did, the command gets an answer
        if not isinstance(err, (FallbackError, TimeoutError, OSError)):
            _LOGGER.debug("Unexpected fallback failure", exc_info=True)
        reason = str(err) if isinstance(err, FallbackError) else type(err).__name__
        _LOGGER.warning("The fallback failed (%s) after Flux failed (%s)", reason, why)
        note = f"fallback-failed: {reason}"
        if flux is not None:
            if flux.ended_by is Ending.ERROR and flux.error is not None:  # the client hears of both failures
                error = copy.copy(flux.error)
                error.args = (f"{flux.error} and the fallback failed: {reason}",)
                return replace(flux, error=error, notes=(*flux.notes, note))
            return replace(flux, notes=(*flux.notes, note))
        error = DeepgramUnavailableError(f"Deepgram is unavailable (tried again in {health.retry_in():.0f} s) and the "
                                     f"fallback failed: {reason}")
        return TurnResult("", Ending.ERROR, error=error, audio_seconds=round(buffer.seconds, 3),
                          elapsed_seconds=loop.time() - started, notes=(note,))
    finally:
        for task in (replaying, ended):
            task.cancel()
        # The replay's close is bounded (an unread connection is aborted); this bound is only a backstop.
        await asyncio.wait([replaying, ended], timeout=STOP_TIMEOUT)
        if not replaying.done():
            _STRAGGLERS.add(replaying)  # referenced until it ends, however late
            replaying.add_done_callback(_STRAGGLERS.discard)
    _LOGGER.info("Fallback answered (Flux: %s) %.0f ms after the audio ended", why, (loop.time() - ended_at) * 1000)
    return TurnResult(
        text=text.strip(), ended_by=Ending.FALLBACK, language=language, fallback=True,
        error=flux.error if flux else None,  # why Flux could not answer (e.g. a key to fix), for the owner
        audio_seconds=round(buffer.seconds, 3), billed_seconds=flux.billed_seconds if flux else 0.0,
        request_id=flux.request_id if flux else None,
        connect_seconds=flux.connect_seconds if flux else None,  # Flux's handshake, when it got that far
        finalize_seconds=loop.time() - ended_at, elapsed_seconds=loop.time() - started,
        notes=(*(flux.notes if flux else ()), f"fallback: {why}"),
    )

