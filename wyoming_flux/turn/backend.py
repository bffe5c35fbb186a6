"""One turn, two APIs: what differs between Flux and Nova-3 for a command, behind one small seam.

The session (session.py) owns the I/O and the state machine (state.py) the decisions; a backend knows how to
open its API's stream, how to ask it for the final text, and how its messages become the state machine's
inputs (text so far, end of speech, final text answered). Everything else — bounds, fallback, partials,
metrics — is the same for both, because it lives in the session and the state machine.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp

from ..deepgram.endpoints import mark_no_force_end, supports_force_end
from ..deepgram.errors import DeepgramError, error_for_stream
from ..deepgram.flux import (
    ConfigureResult,
    FatalError,
    FluxSocket,
    FluxWarning,
    FluxOptions,
    TurnInfo,
    connect_flux,
)
from ..deepgram.keyterms import trim_keyterms
from ..deepgram.models import Api, Model, language_hints, nova_language
from ..deepgram.nova import Metadata, NovaOptions, NovaSocket, Results, UtteranceEnd, connect_nova
from .request import SessionConfig, TurnRequest
from .segments import SettledText
from .state import MAX_TEXT_CHARS, NO_ACTIVE_TURN, Step, TurnState

_LOGGER = logging.getLogger(__name__)



class Backend(Protocol):
    """What a session needs from one API."""

    name: str  # for log lines: "Flux" or "Nova-3"
    url: str
    warm_pool: bool  # the warm pool holds sockets for this API
    keeps_alive: bool  # a stream whose audio pauses needs keep_alive() to stay open
    marks_pauses: bool  # no turn model: a short endpoint is asked for, and the words decide (early answers)

    def options(self, request: TurnRequest, sample_rate: int, *, early: bool, nova_check: bool) -> Any:
        """The query for a command (stream_options below)."""

    def end_timeout(self) -> float:
        """Audio seconds after the last new words in which the API should have ended the command."""

    async def connect(self, http: aiohttp.ClientSession, options: Any, timeout: float) -> Any: ...

    def ends_by_silence(self) -> bool:
        """The end of the turn is asked for with trailing silence + CloseStream instead of a control message."""

    async def ask_final(self, socket: Any) -> None:
        """Ask the API for the final text of what it heard."""

    def close_after_ask(self) -> bool:
        """Send CloseStream right after asking: its answer (Metadata, close) proves nothing more will come."""

    async def keep_alive(self, socket: Any) -> None:
        """Keep a stream open while no audio flows (only called when `keeps_alive`)."""

    def confirms(self, message: object) -> bool:
        """This message reports on our audio (the socket is good)."""

    def handle(self, message: object, state: TurnState, now: float) -> Step:
        """Feed one message to the state machine; raise the DeepgramError a fatal one means."""

    def stream_error(self, socket: Any) -> DeepgramError:
        """The error for a stream that closed before the turn ended."""


class FluxBackend:
    """/v2/listen: Flux's TurnInfo carries the whole turn; EndOfTurn ends it; ForceEndTurn finalizes."""

    name = "Flux"
    warm_pool = True
    keeps_alive = False  # /v2 has no KeepAlive message (an unknown message is fatal)
    marks_pauses = False  # the turn model ends the command; EagerEndOfTurn is the early cue

    def __init__(self, config: SessionConfig, notes: list[str]) -> None:
        self.url = config.url
        self._config = config
        self._api_key = config.api_key
        self._notes = notes
        self._forced = False

    def options(self, request: TurnRequest, sample_rate: int, *, early: bool, nova_check: bool) -> FluxOptions:
        config = self._config
        eager = config.eager_eot_threshold
        if eager is None and early:  # a completion check is configured: eager events are its cue
            eager = min(DEFAULT_EAGER_EOT_THRESHOLD, config.eot_threshold or 0.7)
        return FluxOptions(
            model=request.model.name,
            sample_rate=sample_rate,
            eot_threshold=config.eot_threshold,
            eager_eot_threshold=eager,
            eot_timeout_ms=config.eot_timeout_ms,
            keyterms=tuple(trim_keyterms([*config.keyterms, *request.keyterms])),
            language_hints=tuple(language_hints(request.model, request.language)),
            tags=config.tags,
            mip_opt_out=config.mip_opt_out,
        )

    def end_timeout(self) -> float:
        return self._config.eot_timeout

    async def connect(self, http: aiohttp.ClientSession, options: FluxOptions, timeout: float) -> FluxSocket:
        return await connect_flux(http, self.url, self._api_key, options, timeout=timeout)

    def ends_by_silence(self) -> bool:
        return not supports_force_end(self.url)

    async def ask_final(self, socket: FluxSocket) -> None:
        self._forced = True
        await socket.force_end_turn()

    def close_after_ask(self) -> bool:
        return False  # CloseStream does not finalize a Flux turn: EndOfTurn answers ForceEndTurn

    async def keep_alive(self, socket: FluxSocket) -> None:
        pass

    def confirms(self, message: object) -> bool:
        return isinstance(message, TurnInfo)

    def handle(self, message: object, state: TurnState, now: float) -> Step:
        if isinstance(message, TurnInfo):
            return state.turn_info(message, now)
        if isinstance(message, FatalError):
            error = error_for_stream(message.code, message.description)
            if error.code == "flux-unsupported-message" and self._forced and not state.ending_by_silence:
                mark_no_force_end(self.url)
                self._notes.append("force-end-unsupported")
            raise error
        if isinstance(message, FluxWarning):
            # "No active turn" is how Flux answers our ForceEndTurn when the turn already ended: in client mode,
            # the usual end of a command
            expected = message.code == NO_ACTIVE_TURN and state.forcing is not None
            _LOGGER.log(logging.DEBUG if expected else logging.WARNING, "Flux warning %s: %s", message.code,
                        message.description)
            return state.warning(message.code)
        if isinstance(message, ConfigureResult) and not message.success:
            # Flux keeps the configuration it had; say so once (a ConfigureFailure gives no reason)
            _LOGGER.warning("Flux refused the new keyterms or language hints (Configure, request %s); the command "
                            "goes on with the configuration the connection opened with",
                            message.request_id or "unknown")
            self._notes.append("configure-failed")
        return None

    def stream_error(self, socket: FluxSocket) -> DeepgramError:
        return error_for_stream(socket.close_reason, "Flux closed the stream before the turn ended")


class NovaBackend:
    """/v1/listen: settled (is_final) segments joined in audio order, each once (segments.py), plus the latest
    interim tail; speech_final ends the command, UtteranceEnd if speech_final never comes; Finalize (then
    CloseStream) asks for the final text."""

    name = "Nova-3"
    warm_pool = False  # Nova-3 commands always handshake: a warm socket buys nothing measurable (README)
    keeps_alive = True  # 10 s without audio or a text message closes a /v1 stream (NET-0001)
    marks_pauses = True  # no turn model: a short endpoint, then the words decide

    def __init__(self, config: SessionConfig, notes: list[str]) -> None:
        self.url = config.nova_url
        self._config = config
        self._api_key = config.api_key
        self._settled = SettledText(MAX_TEXT_CHARS)
        self._tail = ""

    def options(self, request: TurnRequest, sample_rate: int, *, early: bool, nova_check: bool) -> NovaOptions:
        config = self._config
        language, hints = nova_language(request.language, request.model)
        return NovaOptions(
            language=language,
            sample_rate=sample_rate,
            # with a check that can answer, a short pause is marked and the words decide (completion.py)
            endpointing_ms=min(config.endpointing_ms, EARLY_ENDPOINTING_MS) if nova_check else config.endpointing_ms,
            utterance_end_ms=config.utterance_end_ms,
            language_hints=hints,
            keyterms=tuple(trim_keyterms([*config.keyterms, *request.keyterms])),
            tags=config.tags,
            mip_opt_out=config.mip_opt_out,
        )

    def end_timeout(self) -> float:
        return max(self._config.endpointing_ms, self._config.utterance_end_ms) / 1000

    async def connect(self, http: aiohttp.ClientSession, options: NovaOptions, timeout: float) -> NovaSocket:
        return await connect_nova(http, self.url, self._api_key, options, timeout=timeout)

    def ends_by_silence(self) -> bool:
        return False

    async def ask_final(self, socket: NovaSocket) -> None:
        await socket.finalize()

    def close_after_ask(self) -> bool:
        # Finalize is answered only if audio is buffered; CloseStream's Metadata says when nothing more will come.
        return True

    async def keep_alive(self, socket: NovaSocket) -> None:
        await socket.keep_alive()

    def confirms(self, message: object) -> bool:
        return isinstance(message, Results)

    def handle(self, message: object, state: TurnState, now: float) -> Step:
        if isinstance(message, Results):
            text = message.transcript.strip()
            if message.is_final:
                # a repeat (or a segment out of time) leaves the tail: it settled nothing new
                if not text or self._settled.add(text, *message.spoken):
                    self._tail = ""
            else:
                self._tail = text
            state.progress(self._settled.text, self._tail, message.end, now,
                           message.languages[0] if message.languages else None)
            if text:
                state.timed_words(message.words)
            if message.from_finalize:  # Finalize may answer in several results: Metadata says they are all in
                state.flushed()
                return None
            if message.speech_final:
                return state.endpoint("speech_final")
            return None
        if isinstance(message, UtteranceEnd):
            return state.endpoint("utterance_end")
        if isinstance(message, Metadata):  # after our CloseStream: every result is in
            return state.finalized()
        return None  # SpeechStarted, unknown types

    def stream_error(self, socket: NovaSocket) -> DeepgramError:
        return error_for_stream(socket.close_reason, "Nova-3 closed the stream before the command ended")


def backend_for(model: Model, config: SessionConfig, notes: list[str]) -> Backend:
    """The one place a command's API decides which code serves it."""
    return NovaBackend(config, notes) if model.api == Api.NOVA else FluxBackend(config, notes)


def stream_options(config: SessionConfig, request: TurnRequest, sample_rate: int, *, early: bool = False,
                   nova_check: bool = False) -> FluxOptions | NovaOptions:
    """The query for a command. The warm pool opens its sockets with the same function, so a socket it
    holds fits a command exactly when the two agree. `early`: a completion check is configured (Flux then asks
    for eager end-of-turn); `nova_check`: it can answer now (Nova-3 then marks short pauses)."""
    options: FluxOptions | NovaOptions = backend_for(request.model, config, []).options(
        request, sample_rate, early=early, nova_check=nova_check)
    return options


# Early answers (completion.py): Flux is asked for EagerEndOfTurn at this confidence unless the user chose one;
# Nova-3 marks a pause this short, and the words decide whether it ends the command.
DEFAULT_EAGER_EOT_THRESHOLD = 0.5
EARLY_ENDPOINTING_MS = 200
