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
from ..deepgram.errors import FluxError, error_for_stream
from ..deepgram.flux import (
    ConfigureResult,
    FatalError,
    FluxSocket,
    FluxWarning,
    StreamOptions,
    TurnInfo,
    connect,
)
from ..deepgram.models import NOVA, FluxModel
from ..deepgram.nova import Metadata, NovaOptions, NovaSocket, Results, UtteranceEnd, connect_nova
from .request import SessionConfig
from .state import NO_ACTIVE_TURN, Decision, ForceTurn, TurnState

_LOGGER = logging.getLogger(__name__)

Step = Decision | ForceTurn | None


class Backend(Protocol):
    """What a session needs from one API."""

    name: str  # for log lines: "Flux" or "Nova-3"
    url: str
    warm_pool: bool  # the warm pool holds sockets for this API

    async def connect(self, http: aiohttp.ClientSession, options: Any, timeout: float) -> Any: ...

    def ends_by_silence(self) -> bool:
        """The end of the turn is asked for with trailing silence + CloseStream instead of a control message."""

    async def ask_final(self, socket: Any) -> None:
        """Ask the API for the final text of what it heard."""

    def close_after_ask(self) -> bool:
        """Send CloseStream right after asking: its answer (Metadata, close) proves nothing more will come."""

    def confirms(self, message: object) -> bool:
        """This message reports on our audio (the socket is good)."""

    def handle(self, message: object, state: TurnState, now: float) -> Step:
        """Feed one message to the state machine; raise the FluxError a fatal one means."""

    def stream_error(self, socket: Any) -> FluxError:
        """The error for a stream that closed before the turn ended."""


class FluxBackend:
    """/v2/listen: Flux's TurnInfo carries the whole turn; EndOfTurn ends it; ForceEndTurn finalizes."""

    name = "Flux"
    warm_pool = True

    def __init__(self, config: SessionConfig, notes: list[str]) -> None:
        self.url = config.url
        self._api_key = config.api_key
        self._notes = notes
        self._forced = False

    async def connect(self, http: aiohttp.ClientSession, options: StreamOptions, timeout: float) -> FluxSocket:
        return await connect(http, self.url, self._api_key, options, timeout=timeout)

    def ends_by_silence(self) -> bool:
        return not supports_force_end(self.url)

    async def ask_final(self, socket: FluxSocket) -> None:
        self._forced = True
        await socket.force_end_turn()

    def close_after_ask(self) -> bool:
        return False  # CloseStream does not finalize a Flux turn: EndOfTurn answers ForceEndTurn

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
            # Flux keeps the configuration it had; say so once
            _LOGGER.warning("Flux refused the new keyterms or language hints (%s); the command goes on with the "
                            "configuration the connection opened with", message.reason)
            self._notes.append(f"configure-failed: {message.reason}")
        return None

    def stream_error(self, socket: FluxSocket) -> FluxError:
        return error_for_stream(socket.close_reason, "Flux closed the stream before the turn ended")


class NovaBackend:
    """/v1/listen: settled (is_final) segments joined in order plus the latest interim tail; speech_final ends
    the command, UtteranceEnd if speech_final never comes; Finalize (then CloseStream) asks for the final text."""

    name = "Nova-3"
    warm_pool = False  # Nova-3 commands always handshake: a warm socket buys nothing measurable (README)

    def __init__(self, config: SessionConfig, notes: list[str]) -> None:
        self.url = config.nova_url
        self._api_key = config.api_key
        self._settled: list[str] = []
        self._tail = ""

    async def connect(self, http: aiohttp.ClientSession, options: NovaOptions, timeout: float) -> NovaSocket:
        return await connect_nova(http, self.url, self._api_key, options, timeout=timeout)

    def ends_by_silence(self) -> bool:
        return False

    async def ask_final(self, socket: NovaSocket) -> None:
        await socket.finalize()

    def close_after_ask(self) -> bool:
        # Finalize is answered only if audio is buffered; CloseStream's Metadata says when nothing more will come.
        return True

    def confirms(self, message: object) -> bool:
        return isinstance(message, Results)

    def handle(self, message: object, state: TurnState, now: float) -> Step:
        if isinstance(message, Results):
            text = message.transcript.strip()
            if message.is_final:
                if text:
                    self._settled.append(text)
                self._tail = ""
            else:
                self._tail = text
            state.progress(self._settled, self._tail, message.end, now,
                           message.languages[0] if message.languages else None)
            if text:
                state.timed_words(message.words)
            if message.from_finalize:
                return state.finalized()
            if message.speech_final:
                return state.endpoint("speech_final")
            return None
        if isinstance(message, UtteranceEnd):
            return state.endpoint("utterance_end")
        if isinstance(message, Metadata):  # after our CloseStream: every result is in
            return state.finalized()
        return None  # SpeechStarted, unknown types

    def stream_error(self, socket: NovaSocket) -> FluxError:
        return error_for_stream(socket.close_reason, "Nova-3 closed the stream before the command ended")


def backend_for(model: FluxModel, config: SessionConfig, notes: list[str]) -> FluxBackend | NovaBackend:
    return NovaBackend(config, notes) if model.api == NOVA else FluxBackend(config, notes)
