"""Fields of client events, checked: a wrong type is a MalformedEvent (an Error to the client), never a crash
deep inside a command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class MalformedEvent(ValueError):
    """A known event with missing or wrong-typed fields: answered with an Error, the connection goes on."""


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int
    channels: int


def text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.isprintable():
        raise MalformedEvent(f"{key} must be text")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        raise MalformedEvent(f"{key} must be text") from None
    return value


def texts(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedEvent(f"{key} must be a list of text")
    return tuple(text({key: item}, key) or "" for item in value)


def audio_format(data: dict[str, Any], fallback: AudioFormat | None = None) -> AudioFormat:
    rate, width, channels = (data.get(key, getattr(fallback, key, None)) for key in ("rate", "width", "channels"))
    if not (type(rate) is int and type(width) is int and type(channels) is int):
        raise MalformedEvent("rate, width and channels must be integers")
    return AudioFormat(rate, width, channels)
