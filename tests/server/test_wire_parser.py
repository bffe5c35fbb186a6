"""The event parser reuses the last header line and data block it decoded; these cases must not fool it."""

from __future__ import annotations

import pytest
from wyoming.audio import AudioChunk
from wyoming.event import Event

from wyoming_flux.server.protocol.wire import BadEvent, EventParser, encode_event


def parse_all(parser: EventParser, data: bytes, step: int) -> list[Event]:
    events = []
    for i in range(0, len(data), step):
        parser.feed(data[i : i + step])
        while (event := parser.next()) is not None:
            events.append(event)
    return events


def chunk(rate: int, fill: int) -> bytes:
    return encode_event(AudioChunk(rate=rate, width=2, channels=1, audio=bytes([fill]) * (rate // 50)).event())


@pytest.mark.parametrize("step", [1, 7, 100, 641, 1 << 20])
def test_repeated_and_changing_chunks_parse_the_same_in_any_split(step: int) -> None:
    stream = chunk(16000, 1) * 3 + chunk(8000, 2) + chunk(16000, 3) * 2
    events = parse_all(EventParser(), stream, step)
    assert [(e.data["rate"], e.payload) for e in events] == [
        (16000, bytes([1]) * 320)] * 3 + [(8000, bytes([2]) * 160)] + [(16000, bytes([3]) * 320)] * 2


@pytest.mark.parametrize("step", [1, 5, 1 << 20])
def test_a_new_header_with_the_same_data_block_gets_its_own_inline_data(step: int) -> None:
    block = b'{"b":2}'
    first = b'{"type":"x","data":{"a":1},"data_length":7}\n' + block
    second = b'{"type":"y","data":{"a":9},"data_length":7}\n' + block
    events = parse_all(EventParser(), first + second + second, step)
    assert [(e.type, e.data) for e in events] == [("x", {"a": 1, "b": 2}), ("y", {"a": 9, "b": 2}), ("y", {"a": 9, "b": 2})]


def test_a_changed_data_block_under_the_same_header_is_decoded_again() -> None:
    header = b'{"type":"x","data_length":7}\n'
    events = parse_all(EventParser(), header + b'{"b":1}' + header + b'{"b":2}', 1 << 20)
    assert [e.data for e in events] == [{"b": 1}, {"b": 2}]


def test_a_bad_data_block_after_a_good_one_under_the_same_header_is_still_refused() -> None:
    header = b'{"type":"x","data_length":7}\n'
    parser = EventParser()
    parser.feed(header + b'{"b":1}' + header + b'[1,2,3]')
    assert parser.next() is not None
    with pytest.raises(BadEvent, match="must be an object"):
        parser.next()


def test_repeats_take_copies_of_the_last_chunk_and_nothing_else() -> None:
    parser = EventParser()
    assert parser.repeats(chunk(16000, 1)) is None  # nothing parsed yet: nothing to repeat
    parser.feed(chunk(16000, 1))
    assert parser.next() is not None and parser.next() is None
    assert parser.last_sizes == (len(chunk(16000, 1)), 320)
    assert parser.repeats(chunk(16000, 2)) == bytes([2]) * 320
    assert parser.repeats(chunk(16000, 3) + chunk(16000, 4)) == bytes([3]) * 320 + bytes([4]) * 320
    rejected = [
        chunk(16000, 5)[:-1],  # a partial chunk
        chunk(16000, 5) + chunk(16000, 6)[:10],  # a chunk and part of the next
        chunk(48000, 5)[: len(chunk(16000, 5))],  # as long, but another header
        chunk(16000, 5) + encode_event(Event(type="audio-stop")),
        encode_event(Event(type="describe")).ljust(len(chunk(16000, 5)), b"\n"),  # as long, not audio
    ]
    for data in rejected:
        assert parser.repeats(data) is None
    # Nothing was consumed by a refusal: the same bytes still parse as events.
    parser.feed(chunk(16000, 5) + encode_event(Event(type="audio-stop")))
    assert [e.type for e in iter(parser.next, None)] == ["audio-chunk", "audio-stop"]
    assert parser.repeats(chunk(16000, 5)) is None  # the last event was audio-stop: it has no payload


def test_repeats_follow_the_last_event_not_an_older_one_of_the_same_length() -> None:
    parser = EventParser()
    parser.feed(chunk(16000, 1) + chunk(16000, 1))
    list(iter(parser.next, None))
    assert parser.repeats(chunk(16000, 2)) is not None  # builds the prefix for the 16 kHz header
    other = encode_event(AudioChunk(rate=32000, width=2, channels=1, audio=bytes(320)).event())
    assert len(other) == len(chunk(16000, 1))  # same length, another rate
    parser.feed(other)
    assert parser.next() is not None
    assert parser.repeats(chunk(16000, 3)) is None
    assert parser.repeats(other) == bytes(320)
