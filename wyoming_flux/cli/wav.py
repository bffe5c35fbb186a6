"""WAV files for `transcribe`: read here rather than with the `wave` module, which before Python 3.12 refuses
WAVE_FORMAT_EXTENSIBLE, the header sox, ffmpeg and most recorders write for 24-bit, 32-bit and multichannel PCM."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..turn.audio import to_int16_mono

_PCM = 1
_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """The file is not a WAV file we can send: one line for the user."""


@dataclass
class Recording:
    pcm: bytes
    rate: int
    width: int
    channels: int
    speech_end: float  # seconds: the end of the last loud stretch


def read_wav(path: str) -> Recording:
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError(f"{path} is not a WAV file (no RIFF/WAVE header)")
    fmt: bytes | None = None
    pcm: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]  # a data size past the end (a recording cut short): what is there
        if kind == b"fmt ":
            fmt = body
        elif kind == b"data" and pcm is None:
            pcm = body
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is None or len(fmt) < 16 or pcm is None:
        raise WavError(f"{path} has no {'fmt' if fmt is None or len(fmt) < 16 else 'data'} chunk")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with the format code
    if tag != _PCM:
        raise WavError(f"{path} is not integer PCM (format {tag}); convert it, e.g. sox in.wav -e signed out.wav")
    width = block_align // channels if channels else 0
    if channels < 1 or rate < 1 or width not in (1, 2, 3, 4) or bits > 8 * width:
        raise WavError(f"{path}: {channels} channels of {bits}-bit samples at {rate} Hz cannot be sent "
                       "(1 to 4 bytes a sample)")
    pcm = pcm[: len(pcm) - len(pcm) % block_align]
    if not pcm:
        raise WavError(f"{path} holds no audio (its data chunk is empty)")
    return Recording(pcm, rate, width, channels, speech_end(pcm, rate, width, channels))


def speech_end(pcm: bytes, rate: int, width: int, channels: int) -> float:
    """Where speech ends: the last 20 ms window louder than a tenth of the loudest one (on a 16-bit scale, so
    the same for every width; 8-bit PCM is unsigned)."""
    mono = to_int16_mono(pcm[: len(pcm) - len(pcm) % (width * channels)], width, channels).astype(np.float64)
    window = max(1, rate // 50)
    count = len(mono) // window
    if count == 0:
        return 0.0
    rms = np.sqrt((mono[: count * window].reshape(count, window) ** 2).mean(axis=1))
    loud = np.nonzero(rms > max(rms.max() / 10, 100))[0]
    return float((loud[-1] + 1) * window / rate) if len(loud) else 0.0
