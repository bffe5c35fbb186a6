"""Audio adaptation: any PCM a client sends -> mono linear16 at a rate Flux accepts, in 80 ms frames."""

from __future__ import annotations

import numpy as np

# Rates Flux takes for raw linear16; anything else is resampled to 16 kHz, the recommended one.
FLUX_SAMPLE_RATES = (8000, 16000, 24000, 44100, 48000)
DEFAULT_RATE = 16000
FRAME_SECONDS = 0.08  # Deepgram's recommended frame length for Flux
MAX_CHANNELS = 32
MIN_RATE, MAX_RATE = 4000, 384000


class AudioFormatError(ValueError):
    """The client's audio format cannot be converted."""


def flux_rate_for(rate: int) -> int:
    """The rate to open the Flux stream at: the client's own if Flux accepts it, else 16 kHz."""
    return rate if rate in FLUX_SAMPLE_RATES else DEFAULT_RATE


def check_format(rate: int, width: int, channels: int) -> None:
    """Refuse formats we cannot convert, with a message a user can act on."""
    if width not in (1, 2, 3, 4):
        raise AudioFormatError(f"unsupported sample width {width} bytes (use 1, 2, 3 or 4)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"unsupported channel count {channels} (use 1 to {MAX_CHANNELS})")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(f"unsupported sample rate {rate} Hz (use {MIN_RATE} to {MAX_RATE})")


def to_int16_mono(data: bytes, width: int, channels: int) -> np.ndarray:
    """Decode little-endian PCM of any width and downmix to mono, as int16."""
    if width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int32)
    elif width == 1:  # 8-bit PCM is unsigned
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        samples = (raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8 >> 16  # sign-extend, keep the top 16 bits
    else:
        samples = np.frombuffer(data, dtype="<i4") >> 16
    if channels == 2:  # the common case, without numpy's slower generic reduction
        samples = (samples[0::2] + samples[1::2]) >> 1
    elif channels > 1:
        samples = samples.reshape(-1, channels).sum(axis=1) // channels
    return samples.astype(np.int16)


class _LinearResampler:
    """Stateful linear interpolation, so chunk boundaries leave no clicks or drift."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._step = in_rate / out_rate
        self._prev = 0.0  # the last input sample of the previous chunk, at position 0
        self._pos = 1.0  # position of the next output sample, in input samples from _prev

    def process(self, samples: np.ndarray) -> np.ndarray:
        n = len(samples)
        if n == 0:
            return samples
        x = np.empty(n + 1, dtype=np.float64)
        x[0] = self._prev
        x[1:] = samples
        count = max(0, int(np.ceil((n - self._pos) / self._step)))
        pos = self._pos + self._step * np.arange(count)
        index = pos.astype(np.int64)
        frac = pos - index
        out = x[index] * (1.0 - frac) + x[index + 1] * frac
        self._pos = self._pos + self._step * count - n
        self._prev = float(x[-1])
        clipped: np.ndarray = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        return clipped


class AudioAdapter:
    """Turns a client's chunks into Flux frames.

    The output rate is fixed when the Flux stream opens; if the client's format changes later, its audio is
    converted to that same rate rather than rejected, so nothing is lost.
    """

    def __init__(self, out_rate: int, frame_seconds: float = FRAME_SECONDS) -> None:
        if out_rate not in FLUX_SAMPLE_RATES:
            raise AudioFormatError(f"Flux does not accept {out_rate} Hz")
        self.out_rate = out_rate
        self.frame_bytes = int(out_rate * frame_seconds) * 2
        self.seconds_in = 0.0  # seconds of client audio converted so far
        self._format: tuple[int, int, int] | None = None
        self._raw = bytearray()  # client audio not converted yet (and a partial sample frame)
        self._batch = 0  # client bytes worth one Flux frame: converted together, one numpy pass per frame
        self._resampler: _LinearResampler | None = None
        self._pending = bytearray()

    def push(self, audio: bytes, rate: int, width: int, channels: int) -> list[bytes]:
        """Take one chunk; return the complete frames it finishes (possibly none)."""
        if self._format != (rate, width, channels):  # checked once per format, not per chunk
            check_format(rate, width, channels)
            self._convert()  # what came in the previous format
            self._raw.clear()  # a partial sample frame of the old format cannot be completed
            self._format = (rate, width, channels)
            self._batch = max(1, int(rate * FRAME_SECONDS)) * width * channels
            self._resampler = None if rate == self.out_rate else _LinearResampler(rate, self.out_rate)
        self.seconds_in += len(audio) / (width * channels * rate)
        if width == 2 and channels == 1 and self._resampler is None:
            if not self._raw and not len(audio) & 1:  # whole samples, nothing held back: straight through
                self._pending += audio
            else:
                self._raw += audio
                self._convert()  # already what Flux wants: no numpy round trip
            return self._take_frames()
        self._raw += audio
        if len(self._raw) >= self._batch:
            self._convert()
        return self._take_frames()

    def _convert(self) -> None:
        """Move the whole sample frames in _raw, converted, to _pending."""
        if self._format is None:
            return
        _, width, channels = self._format
        usable = len(self._raw) - len(self._raw) % (width * channels)
        if not usable:
            return
        if width == 2 and channels == 1 and self._resampler is None:
            self._pending += self._raw[:usable]
        else:
            samples = to_int16_mono(bytes(self._raw[:usable]), width, channels)
            if self._resampler is not None:
                samples = self._resampler.process(samples)
            self._pending += samples.astype("<i2").tobytes()
        del self._raw[:usable]

    def input_needed(self) -> int:
        """Client bytes, in the current format, that would complete the next frame (0 before any audio)."""
        if self._format is None:
            return 0
        rate, width, channels = self._format
        out_samples = (self.frame_bytes - len(self._pending)) // 2
        in_samples = -(-out_samples * rate // self.out_rate)  # rounded up
        return max(0, in_samples * width * channels - len(self._raw))

    def _take_frames(self) -> list[bytes]:
        size = self.frame_bytes
        count = len(self._pending) // size
        if not count:
            return []
        frames = [bytes(self._pending[i * size : (i + 1) * size]) for i in range(count)]
        del self._pending[: count * size]
        return frames

    def flush(self) -> bytes:
        """The short last frame (may be empty: never send an empty frame to Flux)."""
        self._convert()
        rest = bytes(self._pending)
        self._pending.clear()
        return rest
