"""Nova-3's text from its results, through the backend and the state machine (no sockets): segments in audio
order, each once; the text bounded; the work per message bounded, whatever the peer sends."""

from __future__ import annotations

import logging
import time

import pytest

from wyoming_flux.deepgram.nova import Results
from wyoming_flux.turn.backend import NovaBackend
from wyoming_flux.turn.request import SessionConfig
from wyoming_flux.turn.state import MAX_TEXT_CHARS, Bounds, TurnState


def result(text: str, start: float, end: float, *, final: bool = True, timed: bool = True) -> Results:
    """A Results message; with `timed`, its words spread evenly over [start, end] (as Deepgram times them)."""
    words = text.split()
    step = (end - start) / max(1, len(words))
    timings = tuple({"word": w, "start": start + i * step, "end": start + (i + 1) * step}
                    for i, w in enumerate(words)) if timed else ()
    return Results(transcript=text, is_final=final, speech_final=False, from_finalize=False, start=start,
                   duration=end - start, words=timings)


def heard(*messages: Results) -> TurnState:
    backend = NovaBackend(SessionConfig(url="ws://127.0.0.1:9/v2/listen", api_key="k"), [])
    state = TurnState(Bounds(), now=0.0)
    state.connected(0.0)
    for message in messages:
        backend.handle(message, state, 0.0)
    return state


def test_segments_in_order_make_the_command() -> None:
    state = heard(result("turn on", 0.0, 0.8), result("the kitchen", 0.8, 1.6, final=False),
                  result("the kitchen light", 0.8, 2.0))
    assert state.text == "turn on the kitchen light"


def test_a_repeated_segment_is_kept_once() -> None:
    on, light = result("turn on", 0.0, 0.8), result("the kitchen light", 0.8, 2.0)
    assert heard(on, on, light, light, on).text == "turn on the kitchen light"


def test_a_segment_out_of_order_goes_where_its_audio_is() -> None:
    assert heard(result("the kitchen light", 0.8, 2.0), result("turn on", 0.0, 0.8)).text == (
        "turn on the kitchen light")


def test_a_segment_overlapping_one_kept_in_time_is_a_repeat() -> None:
    """Word timings decide: the same words again with slightly different times, or a longer guess over them."""
    state = heard(result("turn on", 0.0, 0.8), result("turn on", 0.02, 0.81), result("turn on the", 0.1, 1.0),
                  result("the kitchen light", 0.8, 2.0))
    assert state.text == "turn on the kitchen light"


def test_segments_that_only_touch_are_both_kept() -> None:
    """Deepgram's own segments share their boundary; the words of two may meet within the slack."""
    assert heard(result("turn on", 0.0, 0.82), result("the light", 0.8, 1.5)).text == "turn on the light"


def test_without_word_timings_the_results_span_orders_them() -> None:
    state = heard(result("the light", 0.8, 1.5, timed=False), result("turn on", 0.0, 0.8, timed=False),
                  result("turn on", 0.0, 0.8, timed=False))
    assert state.text == "turn on the light"


def test_a_repeat_keeps_the_interim_tail() -> None:
    on = result("turn on", 0.0, 0.8)
    state = heard(on, result("the kitchen", 0.8, 1.6, final=False), on)
    assert state.text == "turn on the kitchen"


def test_huge_segments_are_cut_at_the_bound_once_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    word = "light "
    huge = [result(word * ((1 << 20) // len(word)), i, i + 1.0, timed=False) for i in range(20)]  # 1 MiB each
    state = heard(*huge, result(word * 300_000, 20.0, 21.0, final=False))
    assert MAX_TEXT_CHARS - len(word) < len(state.text) <= MAX_TEXT_CHARS
    assert state.text.split() == ["light"] * len(state.text.split())  # cut between words
    assert state.text_cut
    assert sum("characters" in r.getMessage() for r in caplog.records) == 1


def test_tiny_segments_without_end_cost_the_same_per_message() -> None:
    """The settled text was joined again on every message (twice): 20,000 one-word segments took seconds and
    grew with their square. Now the text is kept as it grows and bounded; the figure on a busy machine is far
    under the bound (bench/hostile.py measures a server under this flood)."""
    messages = [result("a", i * 0.01, i * 0.01 + 0.005) for i in range(20_000)]
    started = time.perf_counter()
    state = heard(*messages)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, f"{elapsed:.2f} s for 20,000 segments"
    assert len(state.text) <= MAX_TEXT_CHARS
