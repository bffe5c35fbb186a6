"""Wyoming events to and from bytes, with limits: a hostile or broken client gets an error, not our memory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event

MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 1024 * 1024  # JSON data block after the header line
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024  # one audio chunk: 16 MiB is over 8 minutes of 16 kHz audio
_VERSION = "1.10.2"  # the protocol version our events say they follow


class BadEvent(ValueError):
    """The client sent something that is not a Wyoming event we can read."""


@dataclass(frozen=True)
class WireLimits:
    header_bytes: int = MAX_HEADER_BYTES
    data_bytes: int = MAX_DATA_BYTES
    payload_bytes: int = MAX_PAYLOAD_BYTES


class EventParser:
    """Parses events straight from bytes as they arrive, without a coroutine round trip per field.

    Home Assistant's audio chunks repeat the same header line and data block every 10 ms, so the last parsed
    ones are kept and their JSON is not decoded again.
    """

    def __init__(self, limits: WireLimits = WireLimits()) -> None:
        self._limits = limits
        self._buffer: bytes | bytearray = b""
        self._pos = 0  # start of the next unread event in _buffer
        self._line = b""
        self._header: tuple[str, dict[str, Any], int, int] = ("", {}, 0, 0)
        self._data_bytes = b""
        self._data: dict[str, Any] = {}  # header data and data block together, for the last pair seen
        self._data_line = b""  # the header line _data was decoded under
        self._prefix = (b"", b"", b"")  # (line, data block, the two joined), for repeats()

    @property
    def pending(self) -> bool:
        """True while part of an event has arrived and the rest has not."""
        return self._pos < len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._pos >= len(self._buffer):  # the usual case: all consumed, so parse the new bytes in place
            self._buffer = data
        else:  # part of an event is waiting: keep it, in place when it is already ours to grow
            if isinstance(self._buffer, bytes):
                self._buffer = bytearray(self._buffer[self._pos :])
            elif self._pos:
                del self._buffer[: self._pos]
            self._buffer += data
        self._pos = 0

    @property
    def last_sizes(self) -> tuple[int, int]:
        """(bytes on the wire, payload bytes) of the last event parsed."""
        payload = self._header[3]
        return len(self._line) + len(self._data_bytes) + payload, payload

    def repeats(self, data: bytes) -> bytes | None:
        """If `data` is nothing but copies of the last event (same header line, same data block, a payload of
        the same length), consume it and return their payloads joined; else None, with nothing consumed.

        A streaming client repeats its audio-chunk event with new audio only: this takes a batch of them
        without building an event each.
        """
        size, payload = self.last_sizes
        if not payload or self.pending or len(data) % size:
            return None
        line, data_bytes, prefix = self._prefix
        if line is not self._line or data_bytes is not self._data_bytes:  # built for an earlier event
            prefix = self._line + self._data_bytes
            self._prefix = (self._line, self._data_bytes, prefix)
        if not data.startswith(prefix):
            return None
        if len(data) == size:
            return data[len(prefix):]
        starts = range(0, len(data), size)
        if not all(data.startswith(prefix, start) for start in starts):
            return None
        view, skip = memoryview(data), len(prefix)
        return b"".join([view[start + skip : start + size] for start in starts])

    def next(self) -> Event | None:
        """The next complete event, or None until more bytes arrive. Raises BadEvent."""
        buffer, pos, line = self._buffer, self._pos, self._line
        # The last header line again (it ends with the only newline it holds): compared in place, not copied.
        if not (line and buffer.startswith(line, pos)):
            end = buffer.find(b"\n", pos, pos + self._limits.header_bytes + 1)
            if end < 0:
                if len(buffer) - pos > self._limits.header_bytes:
                    raise BadEvent("event header line is too long")
                return None
            line = bytes(buffer[pos : end + 1])
            self._header = _parse_header(line, self._limits)
            self._line = line
        end = pos + len(line) - 1
        kind, inline, data_length, payload_length = self._header
        data_end = end + 1 + data_length
        if len(buffer) < data_end + payload_length:
            return None  # the rest of this event has not arrived yet
        payload = bytes(buffer[data_end : data_end + payload_length]) if payload_length else None
        self._pos = data_end + payload_length
        # The data block of the last event again, under the same header (so of the same length): reused.
        if self._data_line is not line or not buffer.startswith(self._data_bytes, end + 1):
            data_bytes = bytes(buffer[end + 1 : data_end])
            self._data = {**inline, **(_parse_object(data_bytes, "event data") if data_bytes else {})}
            self._data_bytes, self._data_line = data_bytes, line
        return Event(type=kind, data=self._data, payload=payload)  # data is shared: handlers only read it


def _length(header: dict[str, object], key: str, limit: int) -> int:
    value = header.get(key) or 0
    if not isinstance(value, int) or value < 0:
        raise BadEvent(f"{key} must be a non-negative integer")
    if value > limit:
        raise BadEvent(f"{key} {value} is over the limit of {limit} bytes")
    return value


def _parse_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except RecursionError:  # deeply nested arrays: json recurses per level
        raise BadEvent(f"{what} is nested too deeply") from None
    except ValueError:
        raise BadEvent(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise BadEvent(f"{what} must be an object")
    return value


def _parse_header(line: bytes, limits: WireLimits) -> tuple[str, dict[str, Any], int, int]:
    header = _parse_object(line, "event header")
    if not isinstance(header.get("type"), str):
        raise BadEvent("event header has no type")
    inline = header.get("data") or {}
    if not isinstance(inline, dict):
        raise BadEvent("event data must be an object")
    return (header["type"], inline, _length(header, "data_length", limits.data_bytes),
            _length(header, "payload_length", limits.payload_bytes))


def encode_event(event: Event) -> bytes:
    """One event as wire bytes. ASCII-escaped JSON, so text a client sent us (even a lone surrogate) is
    always encodable when we echo it back."""
    data = json.dumps(event.data, separators=(",", ":")).encode() if event.data else b""
    header: dict[str, Any] = {"type": event.type, "version": _VERSION}
    if data:
        header["data_length"] = len(data)
    if event.payload:
        header["payload_length"] = len(event.payload)
    return b"".join((json.dumps(header, separators=(",", ":")).encode(), b"\n", data, event.payload or b""))
