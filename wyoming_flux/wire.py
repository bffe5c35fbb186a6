"""Reading Wyoming events with limits: a hostile or broken client gets an error, not our memory."""

from __future__ import annotations

import asyncio
import json

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


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None when the client has gone. Raises BadEvent for malformed or oversized input."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's line limit (64 KiB) was exceeded
        raise BadEvent("event header line is too long") from None
    except ConnectionError:
        return None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        raise BadEvent("event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadEvent("event header has no type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise BadEvent("event data must be an object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        extra = json.loads(await reader.readexactly(data_length)) if data_length else {}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    except ValueError:
        raise BadEvent("event data is not JSON") from None
    if not isinstance(extra, dict):
        raise BadEvent("event data must be an object")
    data.update(extra)
    return Event(type=header["type"], data=data, payload=payload)
