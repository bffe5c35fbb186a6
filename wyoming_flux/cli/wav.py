"""WAV files for `transcribe`: read here rather than with the `wave` module, which before Python 3.12 refuses
WAVE_FORMAT_EXTENSIBLE, the header sox, ffmpeg and most recorders write for 24-bit, 32-bit and multichannel PCM.

Only the header is read before the audio is known to fit: a FIFO or a device (`/dev/zero`) is refused before it
is opened for good, chunks before the audio are skipped without being read, and the audio is read up to what a
command may be (`MAX_SECONDS`, `MAX_BYTES`), so no file makes the command hang or fill the memory."""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..common.bounds import RANGES
from ..turn.audio import AudioFormatError, check_format, to_int16_mono

_PCM = 1
_EXTENSIBLE = 0xFFFE
MAX_SECONDS = RANGES["max_command_seconds"][1]  # the longest command a server of ours takes: more is never heard
MAX_BYTES = 64 * 1024 * 1024  # 300 s of 48 kHz stereo 16-bit fits; a command in a richer format can be converted
_MAX_CHUNKS = 64  # chunks before the audio (LIST, bext, fact, ...): a recording has a handful
_MAX_FMT = 1024  # a fmt chunk is 16 to 40 bytes
_UNKNOWN_SIZE = 0x7FFFF000  # streaming writers (ffmpeg, arecord to a pipe) leave the data size at its maximum
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFDIR: "a directory",
          stat.S_IFSOCK: "a socket"}


class WavError(ValueError):
    """The file is not a WAV file we can send: one line for the user."""


@dataclass
class Recording:
    pcm: bytes
    rate: int
    width: int
    channels: int
    speech_end: float  # seconds: the end of the last loud stretch; 0 when no stretch is loud
    warning: str | None = None  # something the user should know, e.g. a file cut short


def read_wav(path: str) -> Recording:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the file's kind is checked on what was opened.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise WavError(f"cannot read {path}: {err.strerror or err}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        raise WavError(f"{path} is {kind}, not a WAV file: transcribe reads a recording from a file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as file:
        try:
            return _read(file, path, os.fstat(fd).st_size)
        except OSError as err:
            raise WavError(f"cannot read {path}: {err.strerror or err}") from None


def _read(file: BinaryIO, path: str, size: int) -> Recording:
    head = file.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError(f"{path} is not a WAV file (no RIFF/WAVE header)")
    fmt: bytes | None = None
    data: tuple[int, int] | None = None  # (offset, size the header announces)
    for _ in range(_MAX_CHUNKS):
        header = file.read(8)
        if len(header) < 8:
            break
        kind, length, body = header[:4], int.from_bytes(header[4:], "little"), file.tell()
        if kind == b"fmt " and fmt is None:
            if length > _MAX_FMT:
                raise WavError(f"{path} has a {length}-byte fmt chunk: not a WAV file we can read")
            fmt = file.read(length)
        elif kind == b"data" and data is None:
            data = (body, length)
        if (fmt is not None and data is not None) or length >= _UNKNOWN_SIZE:
            break  # (a size a streaming writer left: the chunk runs to the end of the file)
        file.seek(body + length + (length & 1))  # chunks are padded to an even length; skipped, not read
    if fmt is None or len(fmt) < 16 or data is None:
        raise WavError(f"{path} has no {'fmt' if fmt is None or len(fmt) < 16 else 'data'} chunk")
    rate, width, channels = _format(fmt, path)
    block = width * channels
    offset, announced = data
    present = max(0, size - offset)
    length = present if announced >= _UNKNOWN_SIZE else min(announced, present)
    length -= length % block
    if not length:
        raise WavError(f"{path} holds no audio (its data chunk is empty)")
    seconds = length / (rate * block)
    if seconds > MAX_SECONDS:
        raise WavError(f"{path} holds {seconds:.0f} s of audio; a command is at most {MAX_SECONDS:g} s: cut it, "
                       f"e.g. sox {path} command.wav trim 0 30")
    if length > MAX_BYTES:
        raise WavError(f"{path} holds {length / 2**20:.0f} MiB of audio, more than the {MAX_BYTES // 2**20} MiB a "
                       f"command may be: convert it, e.g. sox {path} -r 16000 -c 1 -b 16 command.wav")
    file.seek(offset)
    pcm = file.read(length)
    warning = None
    if announced < _UNKNOWN_SIZE and announced > present:
        warning = (f"{path} is cut short: its header announces {announced / (rate * block):.2f} s of audio, the "
                   f"file holds {len(pcm) / (rate * block):.2f} s; sending what is there")
    return Recording(pcm, rate, width, channels, speech_end(pcm, rate, width, channels), warning)


def _format(fmt: bytes, path: str) -> tuple[int, int, int]:
    """(rate, width, channels) of an integer PCM fmt chunk; a WavError for anything a server cannot take."""
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with the format code
    if tag != _PCM:
        raise WavError(f"{path} is not integer PCM (format {tag}); convert it, e.g. sox in.wav -e signed out.wav")
    width = block_align // channels if channels else 0
    if channels < 1 or rate < 1 or width not in (1, 2, 3, 4) or bits > 8 * width:
        raise WavError(f"{path}: {channels} channels of {bits}-bit samples at {rate} Hz cannot be sent "
                       "(1 to 4 bytes a sample)")
    try:
        check_format(rate, width, channels)
    except AudioFormatError as err:
        raise WavError(f"{path}: {err}") from None
    return rate, width, channels


def speech_end(pcm: bytes, rate: int, width: int, channels: int) -> float:
    """Where speech ends: the last 20 ms window louder than a tenth of the loudest one (on a 16-bit scale, so
    the same for every width; 8-bit PCM is unsigned). Decoded a second at a time, so memory stays small."""
    frame = width * channels
    window = max(1, rate // 50)
    block = 50 * window * frame
    usable = len(pcm) - len(pcm) % (window * frame)
    levels = [_window_rms(pcm[start : min(start + block, usable)], window, width, channels)
              for start in range(0, usable, block)]
    if not levels:
        return 0.0
    rms = np.concatenate(levels)
    loud = np.nonzero(rms > max(rms.max() / 10, 100))[0]
    return float((loud[-1] + 1) * window / rate) if len(loud) else 0.0


def _window_rms(pcm: bytes, window: int, width: int, channels: int) -> np.ndarray:
    mono = to_int16_mono(pcm, width, channels).astype(np.float64)
    rms: np.ndarray = np.sqrt((mono.reshape(-1, window) ** 2).mean(axis=1))
    return rms
