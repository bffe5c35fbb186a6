"""Audio adaptation: every width, channel count and rate becomes mono linear16 in 80 ms frames."""

from __future__ import annotations

import numpy as np
import pytest

from wyoming_flux.turn.audio import (
    AudioAdapter,
    AudioFormatError,
    check_format,
    flux_rate_for,
)


def sine(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def encode(signal: np.ndarray, width: int, channels: int) -> bytes:
    """Float [-1, 1] mono -> interleaved PCM of the given width (channels duplicated)."""
    if width == 1:
        raw = (np.clip(signal * 127 + 128, 0, 255)).astype(np.uint8).tobytes()
        samples = np.frombuffer(raw, dtype=np.uint8)
    elif width == 2:
        samples = (signal * 32767).astype("<i2")
    elif width == 3:
        ints = (signal * 8388607).astype(np.int32)
        b = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return np.repeat(b, channels, axis=0).reshape(-1, 3 * channels).tobytes() if channels > 1 else b.tobytes()
    else:
        samples = (signal * 2147483647).astype("<i4")
    return np.repeat(samples, channels).tobytes()


def convert_all(adapter: AudioAdapter, data: bytes, rate: int, width: int, channels: int, chunk: int = 997) -> np.ndarray:
    """Feed in odd-sized chunks (so samples are split across chunks), then flush."""
    out = bytearray()
    for i in range(0, len(data), chunk):
        for frame in adapter.push(data[i : i + chunk], rate, width, channels):
            assert len(frame) == adapter.frame_bytes
            out += frame
    out += adapter.flush()
    return np.frombuffer(bytes(out), dtype="<i2").astype(np.float64) / 32768


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000])
@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2])
def test_any_format_becomes_mono_linear16(rate: int, width: int, channels: int) -> None:
    out_rate = flux_rate_for(rate)
    adapter = AudioAdapter(out_rate)
    data = encode(sine(rate, 1.0), width, channels)
    out = convert_all(adapter, data, rate, width, channels)
    assert abs(len(out) - out_rate) <= 2  # one second in, one second out
    assert adapter.seconds_in == pytest.approx(1.0, abs=1e-6)
    assert dominant_frequency(out, out_rate) == pytest.approx(440, abs=5)
    assert 0.45 < np.max(np.abs(out[100:-100])) < 0.55  # amplitude kept (8-bit is coarser)


def test_rates_flux_accepts_pass_through_and_others_go_to_16k() -> None:
    assert [flux_rate_for(r) for r in (8000, 16000, 24000, 44100, 48000)] == [8000, 16000, 24000, 44100, 48000]
    assert [flux_rate_for(r) for r in (11025, 22050, 32000, 96000)] == [16000] * 4


def test_16k_mono_is_passed_through_byte_exact() -> None:
    adapter = AudioAdapter(16000)
    data = encode(sine(16000, 0.5), 2, 1)
    out = b"".join(adapter.push(data[:333], 16000, 2, 1) + adapter.push(data[333:], 16000, 2, 1)) + adapter.flush()
    assert out == data


def test_frames_are_80ms_and_flush_never_empty_when_nothing_is_left() -> None:
    adapter = AudioAdapter(16000)
    frames = adapter.push(bytes(320 * 17), 16000, 2, 1)  # 170 ms
    assert [len(f) for f in frames] == [2560, 2560]
    assert len(adapter.flush()) == 320
    assert adapter.flush() == b""


def test_stereo_is_averaged() -> None:
    adapter = AudioAdapter(16000)
    left, right = np.full(1280, 1000, dtype="<i2"), np.full(1280, 3000, dtype="<i2")
    data = np.column_stack([left, right]).reshape(-1).tobytes()
    (frame,) = adapter.push(data, 16000, 2, 2)
    assert set(np.frombuffer(frame, dtype="<i2")) == {2000}


def test_format_change_mid_stream_is_converted_to_the_stream_rate() -> None:
    adapter = AudioAdapter(16000)
    out = bytearray()
    for frame in adapter.push(encode(sine(16000, 0.5, 440), 2, 1), 16000, 2, 1):
        out += frame
    for frame in adapter.push(encode(sine(48000, 0.5, 1000), 4, 2), 48000, 4, 2):
        out += frame
    out += adapter.flush()
    samples = np.frombuffer(bytes(out), dtype="<i2").astype(np.float64)
    assert abs(len(samples) - 16000) <= 2  # nothing lost, nothing doubled
    assert dominant_frequency(samples[:7000], 16000) == pytest.approx(440, abs=5)
    assert dominant_frequency(samples[9000:], 16000) == pytest.approx(1000, abs=5)


@pytest.mark.parametrize(
    ("rate", "width", "channels", "message"),
    [(16000, 5, 1, "width"), (16000, 0, 1, "width"), (16000, 2, 0, "channel"), (16000, 2, 64, "channel"),
     (100, 2, 1, "rate"), (10_000_000, 2, 1, "rate")],
)
def test_unconvertible_formats_are_refused_with_a_reason(rate: int, width: int, channels: int, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        check_format(rate, width, channels)
    with pytest.raises(AudioFormatError):
        AudioAdapter(16000).push(b"\0" * 16, rate, width, channels)


@pytest.mark.parametrize("sizes", [[320] * 9, [2560, 2560], [2561, 2559], [1, 319, 3, 2237], [333] * 20, [7, 2553, 1]])
def test_16k_mono_passes_through_byte_exact_whatever_the_chunk_sizes(sizes: list[int]) -> None:
    # Chunks that end mid-sample are held back until the sample completes; whole-sample chunks go straight
    # through. Either way the frames are exactly the input bytes, cut every 80 ms.
    data = bytes(i * 7 % 256 for i in range(sum(sizes)))
    adapter = AudioAdapter(16000)
    frames, offset = [], 0
    for size in sizes:
        frames += adapter.push(data[offset : offset + size], 16000, 2, 1)
        offset += size
    assert all(len(frame) == 2560 for frame in frames)
    assert len(frames) == len(data) // 2 // 1280
    rest = adapter.flush()
    assert b"".join(frames) + rest == data[: len(data) - len(data) % 2]
    assert adapter.seconds_in == pytest.approx(len(data) / 32000)


def test_a_frame_is_released_on_the_chunk_that_completes_it() -> None:
    adapter = AudioAdapter(16000)
    assert [adapter.push(bytes(320), 16000, 2, 1) for _ in range(7)] == [[]] * 7
    assert [len(f) for f in adapter.push(bytes(320), 16000, 2, 1)] == [2560]
    assert adapter.push(bytes(320), 16000, 2, 1) == []
    assert len(adapter.flush()) == 320


@pytest.mark.parametrize(("rate", "channels", "out_rate"), [(16000, 1, 16000), (48000, 2, 48000), (22050, 1, 16000)])
def test_input_needed_is_what_completes_the_next_frame(rate: int, channels: int, out_rate: int) -> None:
    adapter = AudioAdapter(out_rate)
    assert adapter.input_needed() == 0  # no format yet
    chunk = bytes(rate // 100 * 2 * channels)  # 10 ms
    frames = 0
    for _ in range(30):
        adapter.push(chunk, rate, 2, channels)
        needed = adapter.input_needed()
        assert 0 < needed <= int(rate * 0.08 + 1) * 2 * channels
        got = adapter.push(bytes(needed), rate, 2, channels)  # exactly that much completes one frame
        frames += len(got)
        assert len(got) == 1
    assert frames == 30
