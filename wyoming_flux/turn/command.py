"""One voice command, for either door: the Wyoming server (server/command.py) and the Home Assistant entity
(custom_components/deepgram_flux/stt.py) are thin adapters around this runner.

The runner picks the model (and refuses a language no offered model speaks), checks the audio format, keeps
the command's audio for the fallback when one is set (and skips Deepgram while it is down), runs the turn
session, feeds session and buffer, asks the fallback when Deepgram could not answer, logs the outcome once
and closes the stream without holding the answer. What only a door has comes in as arguments: its fallback
replay, its partial-text sink, its wording for settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from ..deepgram.models import Model, choose_model, unserved_language
from ..deepgram.pool import WarmPool
from .audio import AudioFormatError, check_format
from .completion import CompletionCheck
from .fallback import AudioBuffer, DeepgramHealth, Replay, answer_with_fallback
from .request import PartialCallback, SessionConfig, TurnRequest, TurnResult
from .session import TurnSession

_LOGGER = logging.getLogger(__name__)

UNSUPPORTED_LANGUAGE = "unsupported-language"  # a refusal: no offered model speaks the command's language
AUDIO_FORMAT = "audio-format"  # a refusal: audio the session cannot convert


class CommandRefused(Exception):
    """The command cannot be heard as asked, before or while its audio comes: a stable code for clients
    (`unsupported-language`, `audio-format`) and a sentence for the user. Nothing is sent to Deepgram after it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Wording:
    """How a door names the settings a refusal points at (a flag, or an option's label)."""

    nova_off: str = "--no-nova"
    model_option: str = "--model"


@dataclass(frozen=True)
class Fallback:
    """Another speech-to-text service that hears the command again when Deepgram cannot answer."""

    replay: Replay
    timeout: float  # seconds it may take after the audio ended (plus FALLBACK_GRACE)


@dataclass(frozen=True)
class CommandSetup:
    """What every command of a server or config entry shares."""

    config: SessionConfig
    models: tuple[Model, ...]
    http: aiohttp.ClientSession
    health: DeepgramHealth | None = None  # shared: after a failure, Deepgram is skipped for a while (with a fallback)
    pool: WarmPool | None = None
    wording: Wording = Wording()
    completion: CompletionCheck | None = None  # is this a complete command? (early answers; completion.py)
    on_resumed: Callable[[], None] | None = None  # the speaker went on after an early answer (a door counts it)

    def request(self, language: str | None, *, name: str | None = None,
                keyterms: Sequence[str] = ()) -> TurnRequest:
        """The request for a command in `language` (a client may name a model); raises CommandRefused when no
        offered model speaks the language: never a transcript in the wrong language."""
        model = choose_model(list(self.models), name, language)
        if model is None:
            assert language is not None  # without a language the first model serves
            why = unserved_language(list(self.models), language, nova_off=self.wording.nova_off,
                                    model_option=self.wording.model_option)
            raise CommandRefused(UNSUPPORTED_LANGUAGE, why)
        return TurnRequest(model=model, language=language, keyterms=tuple(keyterms))


def check_audio(rate: int, width: int, channels: int) -> None:
    """Raise CommandRefused for audio the session cannot convert."""
    try:
        check_format(rate, width, channels)
    except (AudioFormatError, TypeError) as err:
        raise CommandRefused(AUDIO_FORMAT, f"Audio format not supported: {err}") from None


class Command:
    """One command: construct it when the audio starts, feed() the audio, finish() when the client's audio
    ends (or await result() for Deepgram's own end), and always aclose() once answered (in the background: the
    stream's close is a round trip nobody should wait for).

    With a fallback, the command's audio is kept from its first chunk; `skip_deepgram` (a door's own reason,
    e.g. the integration's monthly cap) or Deepgram being down sends it straight to the fallback."""

    def __init__(self, setup: CommandSetup, request: TurnRequest, rate: int, width: int, channels: int, *,
                 fallback: Fallback | None = None, on_partial: PartialCallback | None = None,
                 skip_deepgram: bool = False) -> None:
        check_audio(rate, width, channels)
        self.request = request
        self._format = (rate, width, channels)
        self._fallback = fallback
        self._health = setup.health if setup.health is not None else DeepgramHealth()
        self._started = asyncio.get_running_loop().time()
        self._buffer = AudioBuffer(setup.config.max_command_seconds) if fallback is not None else None
        self._session: TurnSession | None = None
        # Skipping needs somewhere to go: without a fallback a door does not start a command it skips.
        skip = self._buffer is not None and (skip_deepgram or self._health.skip_flux())
        if skip and not skip_deepgram:
            _LOGGER.info("Deepgram is down (%s): the command goes to the fallback", self._health.last_error)
        if not skip:
            self._session = TurnSession(setup.http, setup.config, request, rate, on_partial=on_partial,
                                        pool=setup.pool, completion=setup.completion,
                                        on_resumed=setup.on_resumed)
            self._session.start()
        self._answer = asyncio.create_task(self._decide(), name="voice command")

    @property
    def decided(self) -> bool:
        """The answer is known: later audio is not needed."""
        return self._answer.done() or (self._session is not None and self._session.done and self._buffer is None)

    @property
    def discarding(self) -> bool:
        """Audio is no longer wanted (answered, or nothing left that hears it)."""
        return self.decided or (self._session is None and self._buffer is None)

    def audio_needed(self) -> int:
        """Client bytes that would complete the next frame for Deepgram; 0 when nothing waits for audio."""
        return self._session.audio_needed() if self._session is not None else 0

    def feed(self, audio: bytes, rate: int | None = None, width: int | None = None,
             channels: int | None = None) -> None:
        """Client audio, in the command's format unless given; raises CommandRefused for audio that cannot be
        converted (the fallback's copy is then dropped, so nothing half-heard is replayed)."""
        rate, width, channels = (rate or self._format[0], width or self._format[1], channels or self._format[2])
        try:
            if self._session is not None:
                self._session.feed(audio, rate, width, channels)
            else:
                check_format(rate, width, channels)
        except (AudioFormatError, TypeError) as err:
            if self._buffer is not None:
                self._buffer.chunks.clear()
                self._buffer.end()
            raise CommandRefused(AUDIO_FORMAT, f"Audio format not supported: {err}") from None
        if self._buffer is not None:
            self._buffer.append(audio, rate, width, channels)

    async def finish(self) -> TurnResult:
        """The client's audio has ended: Deepgram finalizes on what it heard (the fallback hears the rest)."""
        if self._buffer is not None:
            self._buffer.end()
        if self._session is not None and not self._answer.done():
            await self._session.finish()
        return await self.result()

    async def result(self) -> TurnResult:
        """The answer, whenever it is decided."""
        return await asyncio.shield(self._answer)

    def abandon(self) -> None:
        """The client left: a fallback answer nobody waits for is not asked for."""
        if self._buffer is not None:
            self._buffer.end()
            self._answer.cancel()

    async def aclose(self) -> None:
        """Close the Deepgram stream (bounded) and end the answer; safe at any time, more than once."""
        if self._session is not None:
            await self._session.aclose()
        with contextlib.suppress(asyncio.CancelledError):
            await self._answer

    async def _decide(self) -> TurnResult:
        flux = await self._session.wait() if self._session is not None else None
        if self._fallback is not None and self._buffer is not None:
            replay = self._fallback.replay
            result = await answer_with_fallback(flux, self._buffer, replay, fallback_timeout=self._fallback.timeout,
                                                health=self._health, started=self._started)
        else:
            assert flux is not None  # without a fallback, a command always has a session
            result = flux
        log_command(self.request.model, result)
        return result


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def log_command(model: Model, result: TurnResult) -> None:
    """One line per answered command: how it ended, never the words."""
    if result.ended_by.value == "cancelled":
        return
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
