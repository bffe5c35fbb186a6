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

from ..deepgram.errors import DeepgramError, DeepgramStreamError, DeepgramTimeoutError
from ..deepgram.flux import TurnInfo
from .completion import EARLY_TRIGGER

_LOGGER = logging.getLogger(__name__)

UPDATE_INTERVAL = 0.24  # seconds of audio between Flux Updates, until Flux shows its own stride
_MAX_STRIDE = 0.5  # a longer gap between reports is a stall, not a stride
_WALL_GRACE = 2.0  # wall-clock slack over an audio-time bound before we stop trusting Flux's clock
_EOT_GRACE = 1.0  # audio seconds past Flux's own eot_timeout before we end a turn Flux should have ended
_QUIET_AFTER_FORCE = 0.5  # with no turn open, how long Flux may stay silent after we asked for the end
# The one Warning that may answer a ForceEndTurn: with no turn open Flux sends it, or nothing at all.
NO_ACTIVE_TURN = "FORCE_END_TURN_NO_ACTIVE_TURN"
# A voice command is well under 1 KB of text: more than this is a peer's runaway (endless or huge results), and
# is cut, so the text kept, compared per message and answered stays this small (reliability-and-security.md).
MAX_TEXT_CHARS = 4096


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
    # Early answers (completion.py): a Nova-3 endpoint asks whether the words are a complete command first, and
    # when that is not known, waits this many more seconds of silence (the endpointing the user configured).
    check_endpoints: bool = False
    endpoint_wait: float = 0.0
    incomplete_wait: float = 1.5  # Nova-3: unfinished words end at the utterance end, or after this at the latest


@dataclass(frozen=True)
class Decision:
    """The command is over: how, and with what text."""

    ended_by: Ending
    text: str = ""
    trigger: str | None = None
    degraded: bool = False  # the best text heard, not a final Flux confirmed
    reason: str | None = None  # why it is degraded
    error: DeepgramError | None = None


@dataclass(frozen=True)
class ForceTurn:
    """Ask Flux to end the turn on what it heard."""

    reason: Ending


@dataclass(frozen=True)
class Check:
    """Ask whether these words are a complete command; the answer goes to `checked()`."""

    text: str


Step = Decision | ForceTurn | Check | None


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
        self.completed = ""  # the text of finished turns, joined (more than one only in client mode)
        self.turn_text = ""  # completed + turn_text: at most MAX_TEXT_CHARS (+ the space between them)
        self.text_cut = False  # the peer sent more than MAX_TEXT_CHARS; the rest was dropped
        self.turn_active = False
        # A turn the API will still finalize is open: Flux said StartOfTurn (words alone do not start one);
        # Nova-3 heard words with no end of speech marked after them.
        self.turn_started = False
        self.words_at = 0.0  # Flux's audio clock when the current turn last gained or changed words
        self.language: str | None = None
        self.first_text_at: float | None = None
        self.checking: str | None = None  # words asked about at a sign of the end, until they change
        self.endpoint_due: float | None = None  # audio sent by which a Nova-3 endpoint the check did not settle ends
        self.due_trigger = "speech_final"  # ... and the trigger it ends with

    # ------------------------------------------------------------ what we know

    @property
    def text(self) -> str:
        return f"{self.completed} {self.turn_text}".strip()

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

    def turn_info(self, info: TurnInfo, now: float) -> Decision | Check | None:
        if info.transcript.strip():
            self.timed_words(info.words)
        if self.confirmed and info.audio_window_end > self.confirmed:
            self.stride = max(self.stride, min(_MAX_STRIDE, info.audio_window_end - self.confirmed))
        self.confirmed = max(self.confirmed, info.audio_window_end)
        if info.languages:
            self.language = info.languages[0]
        if info.event == "EndOfTurn":
            self.checking = None
            return self._end_of_turn(info)
        if info.event == "TurnResumed":
            self.checking = None  # the speaker went on: an answer about the eager words no longer applies
        if info.event == "StartOfTurn" or info.transcript:
            self.turn_active = True  # an Update with text can come before any StartOfTurn
        if info.event == "StartOfTurn":
            self.turn_started = True
        text = self._fit(info.transcript)
        if info.event == "StartOfTurn" or text != self.turn_text:
            self.words_at = info.audio_window_end
        self.turn_text = text
        if text and self.first_text_at is None:
            self.first_text_at = now
        if info.event == "EagerEndOfTurn" and text and self._may_end_early():
            self.checking = self.text
            return Check(self.text)
        if self.checking is not None and self.checking != self.text:
            self.checking = None
        return None

    def _may_end_early(self) -> bool:
        return self.forcing is None and self.bounds.end_on_flux_eot

    def checked(self, text: str, complete: bool | None, now: float) -> Decision | None:
        """The answer about `text`: complete words still unchanged end the command now. On Nova-3, words that
        are not complete wait for more words or the utterance end; words nobody could judge wait out the
        endpointing the user configured (as without the check)."""
        if self.checking != text or text != self.text or not self._may_end_early():
            return None  # the words changed (or the command is ending otherwise) while we asked
        if complete:
            return self.decide(Ending.END_OF_TURN, trigger=EARLY_TRIGGER)
        if self.bounds.check_endpoints:  # on the audio clock, as Deepgram's own endpointing counts silence
            wait = self.bounds.endpoint_wait if complete is None else self.bounds.incomplete_wait
            self.endpoint_due = self.confirmed + wait
            self.due_trigger = "speech_final" if complete is None else "utterance_end"
        return None

    def _end_of_turn(self, info: TurnInfo) -> Decision | None:
        self.turn_active = self.turn_started = False
        text = info.transcript.strip()
        if text:
            self.completed = self._clip(f"{self.completed} {text[: MAX_TEXT_CHARS + 1]}".strip())
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

    def progress(self, settled: str, tail: str, audio_end: float, now: float,
                 language: str | None = None) -> None:
        """The text so far: the settled segments' text (joined in order), then the latest guess for the
        unsettled tail."""
        if self.confirmed and audio_end > self.confirmed:
            self.stride = max(self.stride, min(_MAX_STRIDE, audio_end - self.confirmed))
        self.confirmed = max(self.confirmed, audio_end)
        if language:
            self.language = language
        before = self.text
        self.completed = self._clip(settled.strip())
        self.turn_text = self._fit(tail)
        text = self.text
        if text != before:
            self.words_at = audio_end
            self.checking = self.endpoint_due = None  # more words: the pause was not the end
            if text:
                self.words_seen_at = now
                self.turn_active = self.turn_started = True  # words heard, no end of speech marked after them
        if text and self.first_text_at is None:
            self.first_text_at = now

    def timed_words(self, words: Sequence[Mapping[str, object]]) -> None:
        """Words of the text so far with the API's timings: the last one's end is where speech ended, as far as
        the API heard (Flux's words carry no timings on deployments from before July 2026)."""
        end = words[-1].get("end") if words else None
        if isinstance(end, (int, float)) and not isinstance(end, bool):
            self.speech_end = float(end)

    def endpoint(self, trigger: str) -> Decision | Check | None:
        """The API marked the end of speech. Ends the command if words were heard (and the API decides the end);
        while we ask for the final text, its answer decides instead: audio after the mark may hold more words.
        With early answers, a short endpoint (speech_final) first asks whether the words are complete; the
        utterance end (the long bound) ends the command whatever the words."""
        self.turn_active = self.turn_started = False
        if self.forcing is None and self.text and self.bounds.end_on_flux_eot:
            if self.bounds.check_endpoints and trigger == "speech_final":
                self.checking = self.text
                return Check(self.text)
            return self.decide(Ending.END_OF_TURN, trigger=trigger)
        return None

    def flushed(self) -> None:
        """The API answered our request for the final text with a result; more may follow (Finalize may answer
        in several), so this is not the end: that is the stream's end (finalized), or quiet once all is in."""
        self.turn_active = self.turn_started = False

    def finalized(self) -> Decision | None:
        """The API says everything it heard is in (Nova-3's Metadata, after our CloseStream)."""
        self.flushed()
        return self.decide(self.forcing) if self.forcing is not None else None

    def warning(self, code: str) -> Decision | None:
        """Only "no active turn" answers a ForceEndTurn; any other Warning leaves the turn as it is.

        Flux answers it after all the audio before our ForceEndTurn, so every turn that ended has been reported:
        the command is decided now, on their text. Words of an Update after the last EndOfTurn with no turn
        started are not a turn Flux will finalize; they are kept only when no turn ended (better than nothing).
        After a StartOfTurn the warning is not taken as the end: that turn's EndOfTurn is still to come."""
        if code == NO_ACTIVE_TURN and self.forcing is not None and not self.turn_started:
            return self._no_turn_open()
        return None

    def _no_turn_open(self) -> Decision:
        """The end we asked for, with no turn open: decided on the turns that ended. Words of a Flux Update that
        started no turn are not a turn Flux will finalize; they are kept only when no turn ended."""
        if self.turn_active and not self.turn_started and self.completed:
            self.turn_text = ""
        self.turn_active = False
        return self.decide(self.forcing or Ending.FORCED)

    def stream_closed(self, close_asked: bool) -> Decision:
        """Flux closed the stream. After our own CloseStream, with everything reported, that is the end."""
        if close_asked and self.forcing is not None and not self.turn_active and self.caught_up():
            return self.decide(self.forcing)
        return self.failed(None, "Deepgram closed the stream before the command ended")

    def failed(self, error: DeepgramError | None, why: str) -> Decision:
        """The stream broke: the words already heard are the honest answer; with none, the error."""
        if self.text:
            return self.decide(self.forcing or Ending.FORCED, degraded=True, reason=why)
        return Decision(Ending.ERROR, error=error or DeepgramStreamError(why))

    def tick(self, now: float) -> Step:
        """Wall-clock bounds: every wait in a command ends, whatever Flux or the client do."""
        bounds = self.bounds
        age = now - self.started_at
        if self.forcing is not None:
            if self.connected_at is None:
                return None  # the connect timeout bounds this wait
            sent_at = self.force_sent_at
            # The API has reported on all our audio and no turn is open: its answer to our request (Flux's
            # NO_ACTIVE_TURN Warning, more results after a Finalize) may never come.
            if (sent_at is not None and not self.turn_started and self.caught_up()
                    and now - sent_at >= _QUIET_AFTER_FORCE):
                return self._no_turn_open()
            if now - max(self.forced_at, self.connected_at) >= bounds.finalize_timeout:
                return self.best("Deepgram did not finalize the command")
        elif not self.heard and (self.confirmed >= bounds.no_speech_timeout
                                 or age >= bounds.no_speech_timeout + _WALL_GRACE):
            _LOGGER.info("No speech within %.1f s; ending the command", bounds.no_speech_timeout)
            return self.decide(Ending.NO_SPEECH)
        elif age >= bounds.max_command_seconds + _WALL_GRACE:
            return ForceTurn(Ending.MAX_LENGTH)
        elif self.endpoint_due is not None and self.sent >= self.endpoint_due and self.text:
            return self.decide(Ending.END_OF_TURN, trigger=self.due_trigger)
        elif (bounds.end_on_flux_eot and self.turn_active
              and self.confirmed - self.words_at >= bounds.eot_timeout + _EOT_GRACE):
            _LOGGER.warning("Deepgram did not end the turn after %.1f s without new words; forcing the end",
                            self.confirmed - self.words_at)
            return ForceTurn(Ending.FORCED)
        elif (self.last_message_at is not None and now - self.last_message_at >= bounds.stall_timeout
              and self.sent - self.confirmed >= 1.0):
            return self.best("Deepgram stopped sending results")
        return None

    def _fit(self, text: str) -> str:
        """The current turn's text (or tail), cut to the room the completed text leaves under the bound."""
        if not self.completed:
            return self._clip(text.strip())
        return self._clip(text.strip(), MAX_TEXT_CHARS - len(self.completed) - 1, after_words=True)

    def _clip(self, text: str, limit: int = MAX_TEXT_CHARS, *, after_words: bool = False) -> str:
        """`text` cut to `limit` characters, between words; a first word longer than that is cut, one that
        would follow other words (`after_words`) is dropped. Logged the first time."""
        limit = max(0, limit)
        if len(text) <= limit:
            return text
        if not self.text_cut:
            self.text_cut = True
            _LOGGER.warning("The transcript passed %d characters, far more than a voice command; the rest is "
                            "dropped", MAX_TEXT_CHARS)
        head = text[: limit + 1]
        cut = head.rfind(" ")
        if cut > 0:
            return head[:cut].rstrip()
        return "" if after_words else head[:limit]

    # ------------------------------------------------------------ decisions out

    def best(self, why: str) -> Decision:
        """Flux is alive but silent: the best text heard, or an error if there is none."""
        if self.text:
            return self.decide(self.forcing or Ending.FORCED, degraded=True, reason=why)
        return Decision(Ending.ERROR, error=DeepgramTimeoutError(f"{why} within the time allowed"))

    def decide(self, ended_by: Ending, **extra: object) -> Decision:
        text = "" if ended_by in (Ending.ERROR, Ending.NO_SPEECH, Ending.CANCELLED) else self.text
        return Decision(ended_by, text, **extra)  # type: ignore[arg-type]
