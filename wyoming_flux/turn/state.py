"""The decisions of one command, as a pure state machine: which text, when to force the end, when it is done.

Fed by events (audio queued and sent, Flux's messages, failures, clock ticks) and answering with a Decision
(the command is over) or a ForceTurn (ask Flux to end the turn). No sockets, no tasks, no clock of its own:
`now` is always passed in, so every rule is unit-tested without I/O (tests/turn/test_state.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from ..deepgram.errors import FluxError, FluxStreamError, FluxTimeoutError
from ..deepgram.flux import TurnInfo

_LOGGER = logging.getLogger(__name__)

UPDATE_INTERVAL = 0.24  # seconds of audio between Flux Updates, until Flux shows its own stride
_MAX_STRIDE = 0.5  # a longer gap between reports is a stall, not a stride
_WALL_GRACE = 2.0  # wall-clock slack over an audio-time bound before we stop trusting Flux's clock
_EOT_GRACE = 1.0  # audio seconds past Flux's own eot_timeout before we end a turn Flux should have ended
_QUIET_AFTER_FORCE = 0.5  # with no turn open, how long Flux may stay silent after we asked for the end
NO_ACTIVE_TURN = "FORCE_END_TURN_NO_ACTIVE_TURN"  # the one Warning that answers a ForceEndTurn


class Ending(str, Enum):
    """What ended a command."""

    END_OF_TURN = "end_of_turn"  # Flux said the user was done
    FORCED = "forced"  # the audio ended first; we asked Flux for the final text
    NO_SPEECH = "no_speech"  # nothing was said within the no-speech bound
    MAX_LENGTH = "max_length"  # the command hit its length bound
    ERROR = "error"
    CANCELLED = "cancelled"  # closed by its owner (e.g. the client left) before it was decided
    FALLBACK = "fallback"  # Flux could not answer; the local fallback did


@dataclass(frozen=True)
class Bounds:
    end_on_flux_eot: bool = True
    no_speech_timeout: float = 8.0
    max_command_seconds: float = 30.0
    eot_timeout: float = 5.0  # Flux's eot_timeout_ms, in seconds
    finalize_timeout: float = 2.0
    stall_timeout: float = 3.0


@dataclass(frozen=True)
class Decision:
    """The command is over: how, and with what text."""

    ended_by: Ending
    text: str = ""
    trigger: str | None = None
    degraded: bool = False  # the best text heard, not a final Flux confirmed
    reason: str | None = None  # why it is degraded
    error: FluxError | None = None


@dataclass(frozen=True)
class ForceTurn:
    """Ask Flux to end the turn on what it heard."""

    reason: Ending


class TurnState:
    """Everything the session knows about the turn, and the rules that end it."""

    def __init__(self, bounds: Bounds, now: float) -> None:
        self.bounds = bounds
        self.started_at = now
        self.connected_at: float | None = None
        self.last_message_at: float | None = None
        self.forcing: Ending | None = None  # why we asked for the end, once we have
        self.forced_at = 0.0
        self.force_sent_at: float | None = None
        self.ending_by_silence = False  # the end is asked for with trailing silence, not ForceEndTurn
        self.force_audio_at = 0.0  # queued audio seconds when the end was asked for
        self.queued = 0.0  # audio seconds queued for Flux
        self.speech_end: float | None = None  # where the last word heard ends, on the API's audio clock (its word
        # timings; None without them)
        self.sent = 0.0  # audio seconds handed to Flux
        self.confirmed = 0.0  # audio seconds Flux says it has processed (audio_window_end)
        self.stride = UPDATE_INTERVAL  # the largest step Flux has taken between two reports
        self.completed: list[str] = []  # finished turns (only more than one in client mode)
        self.turn_text = ""
        self.turn_active = False
        self.turn_started = False  # Flux said StartOfTurn for the current turn (words alone do not start one)
        self.words_at = 0.0  # Flux's audio clock when the current turn last gained or changed words
        self.language: str | None = None
        self.first_text_at: float | None = None

    # ------------------------------------------------------------ what we know

    @property
    def text(self) -> str:
        return " ".join([*self.completed, self.turn_text]).strip()

    @property
    def heard(self) -> bool:
        return bool(self.completed or self.turn_active or self.turn_text)

    def caught_up(self) -> bool:
        """Flux has reported on all the audio it will report on: everything queued went out, and what Flux has
        not confirmed is shorter than the stride Flux itself reports at."""
        return self.sent >= self.queued - 1e-6 and self.sent - self.confirmed < self.stride + 0.01

    # ------------------------------------------------------------ events in

    def connected(self, now: float) -> None:
        self.connected_at = self.last_message_at = now

    def message(self, now: float) -> None:
        self.last_message_at = now

    def audio_queued(self, seconds: float) -> None:
        self.queued += seconds

    def audio_sent(self, seconds: float) -> None:
        self.sent += seconds

    def restart_stream(self) -> None:
        """Everything sent goes again on a new socket (a warm one died before Flux confirmed anything)."""
        self.sent = 0.0
        self.force_sent_at = None

    def force(self, reason: Ending, now: float, *, by_silence: bool = False) -> bool:
        """Record that we ask Flux for the end; False if we already did."""
        if self.forcing is not None:
            return False
        self.forcing, self.forced_at, self.ending_by_silence = reason, now, by_silence
        self.force_audio_at = self.queued
        return True

    def force_sent(self, now: float) -> None:
        self.force_sent_at = now

    def turn_info(self, info: TurnInfo, now: float) -> Decision | None:
        if info.transcript.strip():
            self.timed_words(info.words)
        if self.confirmed and info.audio_window_end > self.confirmed:
            self.stride = max(self.stride, min(_MAX_STRIDE, info.audio_window_end - self.confirmed))
        self.confirmed = max(self.confirmed, info.audio_window_end)
        if info.languages:
            self.language = info.languages[0]
        if info.event == "EndOfTurn":
            return self._end_of_turn(info)
        if info.event == "StartOfTurn" or info.transcript:
            self.turn_active = True  # an Update with text can come before any StartOfTurn
        if info.event == "StartOfTurn":
            self.turn_started = True
        text = info.transcript.strip()
        if info.event == "StartOfTurn" or text != self.turn_text:
            self.words_at = info.audio_window_end
        self.turn_text = text
        if text and self.first_text_at is None:
            self.first_text_at = now
        return None

    def _end_of_turn(self, info: TurnInfo) -> Decision | None:
        self.turn_active = self.turn_started = False
        text = info.transcript.strip()
        if text:
            self.completed.append(text)
        self.turn_text = ""
        if self.forcing is not None and (
            (info.trigger == "manual" and not self.ending_by_silence)
            # with trailing silence: the turn that silence ended, not an earlier one still in flight
            or (self.ending_by_silence and info.audio_window_end >= self.force_audio_at - 0.01)
        ):
            return self.decide(self.forcing, trigger=info.trigger)
        if text and self.bounds.end_on_flux_eot:
            return self.decide(Ending.END_OF_TURN, trigger=info.trigger)
        # Otherwise keep listening: while we force, an earlier turn's EndOfTurn may still be in flight.
        return None

    # Inputs from an API without a turn model (Nova-3): what it heard, where it marked the end of speech, and
    # its answer to our request for the final text. The backend (backend.py) turns its messages into these.

    def progress(self, settled: list[str], tail: str, audio_end: float, now: float,
                 language: str | None = None) -> None:
        """The text so far: settled segments in order, then the latest guess for the unsettled tail."""
        if self.confirmed and audio_end > self.confirmed:
            self.stride = max(self.stride, min(_MAX_STRIDE, audio_end - self.confirmed))
        self.confirmed = max(self.confirmed, audio_end)
        if language:
            self.language = language
        before = self.text
        self.completed, self.turn_text = [part for part in settled if part], tail.strip()
        text = self.text
        if text != before:
            self.words_at = audio_end
            if text:
                self.turn_active = True  # words heard, and no end of speech marked after them yet
        if text and self.first_text_at is None:
            self.first_text_at = now

    def timed_words(self, words: Sequence[Mapping[str, object]]) -> None:
        """Words of the text so far with the API's timings: the last one's end is where speech ended, as far as
        the API heard (Flux's words carry no timings on deployments from before July 2026)."""
        end = words[-1].get("end") if words else None
        if isinstance(end, (int, float)) and not isinstance(end, bool):
            self.speech_end = float(end)

    def endpoint(self, trigger: str) -> Decision | None:
        """The API marked the end of speech. Ends the command if words were heard (and the API decides the end);
        while we ask for the final text, its answer decides instead: audio after the mark may hold more words."""
        self.turn_active = False
        if self.forcing is None and self.text and self.bounds.end_on_flux_eot:
            return self.decide(Ending.END_OF_TURN, trigger=trigger)
        return None

    def finalized(self) -> Decision | None:
        """The API answered our request for the final text: everything it heard is in."""
        self.turn_active = False
        return self.decide(self.forcing) if self.forcing is not None else None

    def warning(self, code: str) -> Decision | None:
        """Only "no active turn" answers a ForceEndTurn; any other Warning leaves the turn as it is.

        Flux answers it after all the audio before our ForceEndTurn, so every turn that ended has been reported:
        the command is decided now, on their text. Words of an Update after the last EndOfTurn with no turn
        started are not a turn Flux will finalize; they are kept only when no turn ended (better than nothing).
        After a StartOfTurn the warning is not taken as the end: that turn's EndOfTurn is still to come."""
        if code == NO_ACTIVE_TURN and self.forcing is not None and not self.turn_started:
            if self.completed:
                self.turn_text = ""
            self.turn_active = False
            return self.decide(self.forcing)
        return None

    def stream_closed(self, close_asked: bool) -> Decision:
        """Flux closed the stream. After our own CloseStream, with everything reported, that is the end."""
        if close_asked and self.forcing is not None and not self.turn_active and self.caught_up():
            return self.decide(self.forcing)
        return self.failed(None, "Flux closed the stream before the turn ended")

    def failed(self, error: FluxError | None, why: str) -> Decision:
        """The stream broke: the words already heard are the honest answer; with none, the error."""
        if self.text:
            return self.decide(self.forcing or Ending.FORCED, degraded=True, reason=why)
        return Decision(Ending.ERROR, error=error or FluxStreamError(why))

    def tick(self, now: float) -> Decision | ForceTurn | None:
        """Wall-clock bounds: every wait in a command ends, whatever Flux or the client do."""
        bounds = self.bounds
        age = now - self.started_at
        if self.forcing is not None:
            if self.connected_at is None:
                return None  # the connect timeout bounds this wait
            sent_at = self.force_sent_at
            if (sent_at is not None and not self.turn_active and self.caught_up()
                    and now - sent_at >= _QUIET_AFTER_FORCE):
                return self.decide(self.forcing)  # Flux has reported on all our audio, no turn is open
            if now - max(self.forced_at, self.connected_at) >= bounds.finalize_timeout:
                return self.best("Flux did not finalize the turn")
        elif not self.heard and (self.confirmed >= bounds.no_speech_timeout
                                 or age >= bounds.no_speech_timeout + _WALL_GRACE):
            _LOGGER.info("No speech within %.1f s; ending the command", bounds.no_speech_timeout)
            return self.decide(Ending.NO_SPEECH)
        elif age >= bounds.max_command_seconds + _WALL_GRACE:
            return ForceTurn(Ending.MAX_LENGTH)
        elif (bounds.end_on_flux_eot and self.turn_active
              and self.confirmed - self.words_at >= bounds.eot_timeout + _EOT_GRACE):
            _LOGGER.warning("Deepgram did not end the turn after %.1f s without new words; forcing the end",
                            self.confirmed - self.words_at)
            return ForceTurn(Ending.FORCED)
        elif (self.last_message_at is not None and now - self.last_message_at >= bounds.stall_timeout
              and self.sent - self.confirmed >= 1.0):
            return self.best("Flux stopped sending results")
        return None

    # ------------------------------------------------------------ decisions out

    def best(self, why: str) -> Decision:
        """Flux is alive but silent: the best text heard, or an error if there is none."""
        if self.text:
            return self.decide(self.forcing or Ending.FORCED, degraded=True, reason=why)
        return Decision(Ending.ERROR, error=FluxTimeoutError(f"{why} within the time allowed"))

    def decide(self, ended_by: Ending, **extra: object) -> Decision:
        text = "" if ended_by in (Ending.ERROR, Ending.NO_SPEECH, Ending.CANCELLED) else self.text
        return Decision(ended_by, text, **extra)  # type: ignore[arg-type]
