"""A large JSON answer decoded one element at a time, keeping only what the caller wants of each.

`json.loads` of a 30 MB answer is one C call that holds the interpreter for seconds (no other thread runs, and
on the event loop nothing else does) and builds every object at once, hundreds of MB. Here the container at a
given path (e.g. the `result` list of Home Assistant's get_states) is walked element by element: each one is
decoded alone, passed to `element`, and dropped unless it returns something. Run in a worker thread, the
interpreter switches back to the event loop between elements, and a caller that gave up (its timeout) sets
`stop`: the worker ends at the next element instead of decoding the rest for nothing.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

Element = Callable[[str | None, Any], Any]  # (key in an object, or None in a list; value) -> kept value, or None

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class Stopped(Exception):
    """The caller set `stop`: the decoding ended before its end."""


def decode_elements(text: str, path: tuple[str, ...], element: Element,
                    stop: threading.Event | None = None) -> Any:
    """`text` decoded, the container at `path` (keys of nested objects) element by element through `element`;
    everything off the path decoded as usual. ValueError if `text` is not JSON; Stopped once `stop` is set."""
    if stop is not None:
        element = _stoppable(element, stop)
    try:
        value, end = _value(text, _skip(text, 0), path, element)
    except IndexError:
        raise ValueError("the JSON text ends early") from None
    except RecursionError:
        raise ValueError("the JSON text is nested too deeply") from None
    if _skip(text, end) != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def _stoppable(element: Element, stop: threading.Event) -> Element:
    def checked(key: str | None, value: Any) -> Any:
        if stop.is_set():
            raise Stopped
        return element(key, value)

    return checked


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]


def _value(text: str, pos: int, path: tuple[str, ...] | None, element: Element) -> tuple[Any, int]:
    if path is not None:
        if text[pos] == "{":
            return _members(text, pos, path, element)
        if text[pos] == "[":
            return _items(text, pos, path, element)
    return _DECODER.raw_decode(text, pos)


def _members(text: str, pos: int, path: tuple[str, ...], element: Element) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text[pos] == "}":
        return out, pos + 1
    while True:
        if text[pos] != '"':
            raise ValueError(f"expected a key at {pos}")
        key, pos = _scanstring(text, pos + 1)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise ValueError(f"expected ':' at {pos}")
        pos = _skip(text, pos + 1)
        if path:  # on the way down: only the next key on the path is walked
            value, pos = _value(text, pos, path[1:] if key == path[0] else None, element)
            out[key] = value
        else:
            value, pos = _DECODER.raw_decode(text, pos)
            if (kept := element(key, value)) is not None:
                out[key] = kept
        done, pos = _after(text, pos, "}")
        if done:
            return out, pos


def _items(text: str, pos: int, path: tuple[str, ...], element: Element) -> tuple[list[Any], int]:
    out: list[Any] = []
    pos = _skip(text, pos + 1)
    if text[pos] == "]":
        return out, pos + 1
    while True:
        value, pos = _DECODER.raw_decode(text, pos)
        if path:  # a list where the path wanted an object: kept as it is, still one element at a time
            out.append(value)
        elif (kept := element(None, value)) is not None:
            out.append(kept)
        done, pos = _after(text, pos, "]")
        if done:
            return out, pos


def _after(text: str, pos: int, close: str) -> tuple[bool, int]:
    """After a container's element: (True, past the container) at its end, else (False, the next element)."""
    pos = _skip(text, pos)
    if text[pos] == close:
        return True, pos + 1
    if text[pos] != ",":
        raise ValueError(f"expected ',' or '{close}' at {pos}")
    return False, _skip(text, pos + 1)
