"""Reading Wyoming events with limits: a hostile or broken client gets an error, not our memory."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

MAX_DATA_BYTES = 1024 * 1024  # JSON data block after the header line
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024  # one audio chunk: 16 MiB is over 8 minutes of 16 kHz audio


class BadEvent(ValueError):
    """The client sent something that is not a Wyoming event we can read."""


def _length(header: dict[str, object], key: str, limit: int) -> int:
    value = header.get(key) or 0
    if not isinstance(value, int) or value < 0:
        raise BadEvent(f"{key} must be a non-negative integer")
    if value > limit:
        raise BadEvent(f"{key} {value} is over the limit of {limit} bytes")
    return value


MAX_HEADER_BYTES = 64 * 1024


class EventReader:
    """Reads events from one client: whole blocks from the socket, then every complete event in the buffer,
    without a coroutine round trip per field. Home Assistant's audio chunks repeat the same header line and
    data block 10 ms after 10 ms, so the last parsed ones are kept and their JSON is not decoded again."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self._pos = 0  # start of the next unread event in _buffer
        self._line = b""
        self._header: tuple[str, dict[str, Any], int, int] = ("", {}, 0, 0)
        self._data_bytes = b""
        self._data: dict[str, Any] = {}

    async def read(self) -> Event | None:
        """The next event, or None when the client has gone. Raises BadEvent for malformed or oversized input."""
        while (event := self._next()) is None:
            try:
                block = await self._reader.read(65536)
            except ConnectionError:
                return None
            if not block:
                return None
            if self._pos:  # drop what was consumed before growing the buffer
                del self._buffer[: self._pos]
                self._pos = 0
            self._buffer += block
        return event

    def _next(self) -> Event | None:
        buffer, pos = self._buffer, self._pos
        end = buffer.find(b"\n", pos)
        if (end if end >= 0 else len(buffer)) - pos > MAX_HEADER_BYTES:
            raise BadEvent("event header line is too long")
        if end < 0:
            return None
        line = bytes(buffer[pos : end + 1])
        if line != self._line:
            self._header = _parse_header(line)
            self._line = line
        kind, inline, data_length, payload_length = self._header
        data_end = end + 1 + data_length
        if len(buffer) < data_end + payload_length:
            return None  # the rest of this event has not arrived yet
        data_bytes = bytes(buffer[end + 1 : data_end])
        payload = bytes(buffer[data_end : data_end + payload_length]) if payload_length else None
        self._pos = data_end + payload_length
        if data_bytes != self._data_bytes:
            self._data = _parse_data(data_bytes)
            self._data_bytes = data_bytes
        return Event(type=kind, data={**inline, **self._data}, payload=payload)


def _parse_header(line: bytes) -> tuple[str, dict[str, Any], int, int]:
    try:
        header = json.loads(line)
    except ValueError:
        raise BadEvent("event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadEvent("event header has no type")
    inline = header.get("data") or {}
    if not isinstance(inline, dict):
        raise BadEvent("event data must be an object")
    return (header["type"], inline, _length(header, "data_length", MAX_DATA_BYTES),
            _length(header, "payload_length", MAX_PAYLOAD_BYTES))


def _parse_data(data_bytes: bytes) -> dict[str, Any]:
    if not data_bytes:
        return {}
    try:
        data = json.loads(data_bytes)
    except ValueError:
        raise BadEvent("event data is not JSON") from None
    if not isinstance(data, dict):
        raise BadEvent("event data must be an object")
    return data
