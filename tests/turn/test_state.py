"""The turn's state machine on its own: events in, decisions out, no sockets and no real clock."""

from __future__ import annotations

import dataclasses

from wyoming_flux.deepgram.errors import DeepgramStreamError, DeepgramTimeoutError
from wyoming_flux.deepgram.flux import TurnInfo
from wyoming_flux.turn.state import (
    MAX_TEXT_CHARS,
    NO_ACTIVE_TURN,
    Bounds,
    Decision,
    Ending,
    ForceTurn,
    TurnState,
)


def info(event: str, end: float, text: str = "", trigger: str | None = None) -> TurnInfo:
    return TurnInfo(event=event, turn_index=0, transcript=text, audio_window_start=0.0, audio_window_end=end,
                    trigger=trigger)


def started(**bounds: object) -> TurnState:
    state = TurnState(Bounds(**bounds), now=0.0)  # type: ignore[arg-type]
    state.connected(0.0)
    return state


def test_end_of_turn_with_text_ends_the_command() -> None:
    state = started()
    assert state.turn_info(info("StartOfTurn", 0.5), 0.5) is None
    assert state.turn_info(info("Update", 0.72, "turn on"), 0.7) is None
    decision = state.turn_info(info("EndOfTurn", 1.2, "turn on the light", "model"), 1.2)
    assert decision == Decision(Ending.END_OF_TURN, "turn on the light", trigger="model")


def test_client_mode_joins_turns_and_waits_for_the_forced_end() -> None:
    state = started(end_on_flux_eot=False)
    assert state.turn_info(info("EndOfTurn", 1.0, "what time is it", "model"), 1.0) is None
    state.turn_info(info("Update", 1.5, "set a"), 1.5)
    assert state.force(Ending.FORCED, 1.6)
    assert not state.force(Ending.MAX_LENGTH, 1.7)  # asked once only
    decision = state.turn_info(info("EndOfTurn", 1.7, "set a timer", "manual"), 1.8)
    assert decision is not None and decision.text == "what time is it set a timer"
    assert decision.ended_by is Ending.FORCED


def test_flux_text_is_cut_at_the_bound_in_updates_and_across_turns() -> None:
    """A runaway peer's TurnInfo (a 1 MiB transcript, endless turns in client mode) is kept to the bound."""
    state = started(end_on_flux_eot=False)
    huge = "light " * 200_000
    state.turn_info(info("Update", 0.5, huge), 0.5)
    assert 0 < len(state.text) <= MAX_TEXT_CHARS and state.text_cut
    for turn in range(1_000):
        state.turn_info(info("EndOfTurn", 1.0 + turn, huge, "model"), 1.0 + turn)
    state.turn_info(info("Update", 2_000.0, huge), 2_000.0)
    assert MAX_TEXT_CHARS - len("light ") < len(state.text) <= MAX_TEXT_CHARS
    assert state.force(Ending.FORCED, 2_000.0)
    decision = state.turn_info(info("EndOfTurn", 2_001.0, huge, "manual"), 2_001.0)
    assert decision is not None and decision.text == state.text and len(decision.text) <= MAX_TEXT_CHARS


def test_only_the_no_active_turn_warning_answers_a_force() -> None:
    state = started()
    state.force(Ending.FORCED, 1.0)
    assert state.warning("SOME_OTHER_WARNING") is None
    assert state.warning(NO_ACTIVE_TURN) == Decision(Ending.FORCED, "")


def test_no_active_turn_warning_while_a_turn_is_open_is_not_the_end() -> None:
    state = started()
    state.turn_info(info("StartOfTurn", 0.5), 0.5)
    state.force(Ending.FORCED, 1.0)
    assert state.warning(NO_ACTIVE_TURN) is None


def test_caught_up_follows_the_stride_flux_reports_at() -> None:
    state = started()
    state.audio_queued(2.0)
    state.audio_sent(2.0)
    for end in (0.24, 0.48, 0.72, 0.96, 1.2, 1.44, 1.68):
        state.turn_info(info("Update", end), end)
    assert not state.caught_up()  # 0.32 s unconfirmed > the 0.24 s stride
    state.turn_info(info("Update", 1.92), 2.0)
    assert state.caught_up()
    wide = started()  # a deployment that reports every 0.4 s of audio
    wide.audio_queued(2.0)
    wide.audio_sent(2.0)
    for end in (0.4, 0.8, 1.2, 1.6):
        wide.turn_info(info("Update", end), end)
    assert wide.caught_up()  # 0.4 s unconfirmed is within its stride
    wide.audio_queued(0.08)
    assert not wide.caught_up()  # audio still queued is never caught up


def test_quiet_after_force_with_everything_confirmed_is_the_end() -> None:
    state = started()
    state.audio_queued(1.0)
    state.audio_sent(1.0)
    state.turn_info(info("Update", 0.96), 1.0)
    state.force(Ending.FORCED, 1.0)
    state.force_sent(1.0)
    assert state.tick(1.2) is None
    assert state.tick(1.6) == Decision(Ending.FORCED, "")


def test_a_failure_after_words_answers_them_degraded_and_before_words_is_the_error() -> None:
    state = started()
    error = DeepgramStreamError("broken")
    assert state.failed(error, "broken") == Decision(Ending.ERROR, error=error)
    state.turn_info(info("Update", 0.72, "turn on the"), 0.7)
    decision = state.failed(error, "Flux reported an error")
    assert (decision.text, decision.degraded, decision.reason) == ("turn on the", True, "Flux reported an error")
    assert decision.ended_by is Ending.FORCED and decision.error is None


def test_trailing_silence_end_accepts_the_turn_it_ended_not_an_earlier_one() -> None:
    state = started(end_on_flux_eot=False)
    state.audio_queued(2.0)
    state.turn_info(info("Update", 1.9, "set a timer"), 1.9)
    state.force(Ending.FORCED, 2.0, by_silence=True)
    state.audio_queued(5.3)
    assert state.turn_info(info("EndOfTurn", 1.5, "what time is it", "model"), 2.1) is None  # earlier turn
    decision = state.turn_info(info("EndOfTurn", 7.0, "set a timer", "timeout"), 2.3)
    assert decision == Decision(Ending.FORCED, "what time is it set a timer", trigger="timeout")


def test_close_after_our_close_stream_is_the_end_once_everything_is_confirmed() -> None:
    state = started()
    state.audio_queued(1.0)
    state.audio_sent(1.0)
    state.turn_info(info("Update", 0.96), 1.0)
    state.force(Ending.FORCED, 1.0, by_silence=True)
    assert state.stream_closed(close_asked=True) == Decision(Ending.FORCED, "")
    assert state.stream_closed(close_asked=False).ended_by is Ending.ERROR


def test_bounds() -> None:
    quiet = started(no_speech_timeout=1.0)
    quiet.turn_info(info("Update", 1.2), 1.2)
    assert quiet.tick(1.3) == Decision(Ending.NO_SPEECH)
    stuck = started(eot_timeout=0.5)
    stuck.turn_info(info("Update", 0.5, "turn"), 0.5)
    stuck.turn_info(info("Update", 2.1, "turn"), 2.1)  # 1.6 s of audio without a new word
    assert stuck.tick(2.2) == ForceTurn(Ending.FORCED)
    long = started(max_command_seconds=3.0)
    long.turn_info(info("Update", 0.5, "turn"), 0.5)
    assert long.tick(5.1) == ForceTurn(Ending.MAX_LENGTH)
    silent = started(finalize_timeout=2.0)
    silent.force(Ending.FORCED, 1.0)
    decision = silent.tick(3.1)
    assert isinstance(decision, Decision) and isinstance(decision.error, DeepgramTimeoutError)
    stalled = started(stall_timeout=3.0)
    stalled.audio_queued(4.0)
    stalled.audio_sent(4.0)
    stalled.turn_info(info("Update", 0.72, "turn on"), 0.7)
    decision = stalled.tick(3.8)
    assert isinstance(decision, Decision) and decision.degraded and decision.text == "turn on"


def test_no_active_turn_after_words_that_started_no_turn_is_the_end_with_the_ended_turns() -> None:
    state = started(end_on_flux_eot=False)  # client mode: an EndOfTurn does not end the command
    state.turn_info(info("StartOfTurn", 0.5), 0.5)
    state.turn_info(info("EndOfTurn", 1.5, "what time is it"), 1.5)
    state.turn_info(info("Update", 1.8, "uh huh"), 1.8)  # words, but Flux starts no turn
    state.force(Ending.FORCED, 2.0)
    decision = state.warning(NO_ACTIVE_TURN)
    assert decision is not None and (decision.ended_by, decision.text) == (Ending.FORCED, "what time is it")


def test_the_end_of_speech_is_the_last_words_end_in_the_apis_timings_and_unknown_without_them() -> None:
    state = started()
    update = info("Update", 1.2, "turn on the light")
    state.turn_info(update, now=1.3)
    assert state.speech_end is None  # a deployment whose words carry no timings
    words = ({"word": "turn", "start": 0.5, "end": 0.7}, {"word": "light", "start": 1.0, "end": 1.14})
    state.turn_info(dataclasses.replace(update, words=words), now=1.5)
    assert state.speech_end == 1.14
    state.turn_info(dataclasses.replace(update, transcript="", words=(), audio_window_end=1.44), now=1.6)
    assert state.speech_end == 1.14  # an Update in the silence after speech keeps it
