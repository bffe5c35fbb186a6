"""Deepgram Nova-3 live streaming (/v1/listen) client: stream options, typed messages, Finalize and CloseStream.

Nova-3 has no turn model: Deepgram's endpointing (a VAD on its side) marks `speech_final` after `endpointing`
ms of silence, and `UtteranceEnd` backs it up from word timings. Handshake and failures are Flux's (stream.py,
errors.py), so both APIs report the same stable error codes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard, Union

import aiohttp

from ..common.bounds import check_range
from .stream import UnknownMessage
from .stream import DeepgramSocket, open_stream

DEFAULT_ENDPOINTING_MS = 500  # top of Deepgram's 300-500 ms for speakers who pause (README: the measurement)
DEFAULT_UTTERANCE_END_MS = 1000  # Deepgram's own example and the shortest it recommends (interim results are ~1 s)
NOVA_KEYTERM_TOKEN_BUDGET = 500
# Deepgram closes a /v1 stream that gets neither audio nor a text message for 10 s (1011, NET-0001), and asks
# for a KeepAlive every 3-5 s while no audio flows.
KEEP_ALIVE_SECONDS = 3.0


@dataclass(frozen=True)
class NovaOptions:
    """Everything that goes into the /v1/listen query string for a voice command."""

    language: str  # a monolingual model's code, or "multi"
    sample_rate: int = 16000
    encoding: str = "linear16"
    model: str = "nova-3"
    endpointing_ms: int = DEFAULT_ENDPOINTING_MS
    utterance_end_ms: int = DEFAULT_UTTERANCE_END_MS
    language_hints: tuple[str, ...] = ()  # only with language=multi
    keyterms: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    mip_opt_out: bool = False

    def validate(self) -> None:
        check_range("endpointing_ms", self.endpointing_ms)
        check_range("utterance_end_ms", self.utterance_end_ms)

    def query(self) -> list[tuple[str, str]]:
        params = [
            ("model", self.model), ("language", self.language), ("encoding", self.encoding),
            ("sample_rate", str(self.sample_rate)), ("channels", "1"),
            ("interim_results", "true"),  # partials, and UtteranceEnd needs them
            ("endpointing", str(self.endpointing_ms)), ("utterance_end_ms", str(self.utterance_end_ms)),
            ("vad_events", "true"), ("smart_format", "true"),
        ]
        if self.language == "multi":
            params += [("language_hint", hint) for hint in self.language_hints]
        params += [("keyterm", term) for term in self.keyterms]
        params += [("tag", tag[:128]) for tag in self.tags]
        if self.mip_opt_out:
            params.append(("mip_opt_out", "true"))
        return params


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Results:
    transcript: str
    is_final: bool
    speech_final: bool
    from_finalize: bool
    start: float
    duration: float
    languages: tuple[str, ...] = ()
    words: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def end(self) -> float:
        """Deepgram's audio clock at the end of this result."""
        return self.start + self.duration

    @property
    def spoken(self) -> tuple[float, float]:
        """Where its words are, in audio seconds (first word's start, last word's end): tighter than the result's
        own span, which also covers the silence around them; that span when word timings are missing."""
        if self.words:
            first, last = self.words[0].get("start"), self.words[-1].get("end")
            if _seconds(first) and _seconds(last) and first <= last:
                return float(first), float(last)
        return self.start, self.end


def _seconds(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class UtteranceEnd:
    last_word_end: float


@dataclass(frozen=True)
class SpeechStarted:
    timestamp: float


@dataclass(frozen=True)
class Metadata:
    """Sent after CloseStream, once everything has been reported: the stream is done."""

    request_id: str
    duration: float


NovaMessage = Union[Results, UtteranceEnd, SpeechStarted, Metadata, UnknownMessage]


def parse_nova_message(text: str) -> NovaMessage:
    """Parse one server message; anything unexpected becomes UnknownMessage instead of an exception."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        kind = data.get("type")
        if kind == "Results":
            channel = data.get("channel") or {}
            alternatives = channel.get("alternatives") or [{}]
            best = alternatives[0] if isinstance(alternatives[0], dict) else {}
            return Results(
                transcript=str(best.get("transcript") or ""),
                is_final=data.get("is_final") is True,
                speech_final=data.get("speech_final") is True,
                from_finalize=data.get("from_finalize") is True,
                start=float(data.get("start") or 0.0),
                duration=float(data.get("duration") or 0.0),
                languages=tuple(str(lang) for lang in best.get("languages") or ()),
                words=tuple(w for w in best.get("words") or () if isinstance(w, dict)),
            )
        if kind == "UtteranceEnd":
            return UtteranceEnd(float(data.get("last_word_end") or 0.0))
        if kind == "SpeechStarted":
            return SpeechStarted(float(data.get("timestamp") or 0.0))
        if kind == "Metadata":
            return Metadata(str(data.get("request_id") or ""), float(data.get("duration") or 0.0))
        return UnknownMessage(str(kind), text[:500])
    except (ValueError, TypeError, AttributeError, RecursionError):  # RecursionError: nested too deeply
        return UnknownMessage("<malformed>", text[:500])


# ---------------------------------------------------------------- connection


class NovaSocket(DeepgramSocket[NovaMessage]):
    """One open /v1/listen stream."""

    service = "Nova-3"

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, request_id: str | None) -> None:
        super().__init__(ws, request_id, parse_nova_message)

    async def finalize(self) -> None:
        """Process the buffered audio now; its results come back with from_finalize (none if nothing is buffered)."""
        await self._send(self._ws.send_str('{"type":"Finalize"}'))

    async def keep_alive(self) -> None:
        """Still here, though no audio flows (Deepgram does not answer it)."""
        await self._send(self._ws.send_str('{"type":"KeepAlive"}'))


async def connect_nova(
    http: aiohttp.ClientSession,
    url: str,
    api_key: str,
    options: NovaOptions,
    *,
    timeout: float = 5.0,
) -> NovaSocket:
    """Open a Nova-3 stream. Raises a DeepgramError subclass (the one error table) within `timeout` seconds."""
    options.validate()
    ws, request_id = await open_stream(http, url, api_key, options.query(), timeout=timeout, service="Nova-3")
    return NovaSocket(ws, request_id)


async def verify_nova_access(http: aiohttp.ClientSession, url: str, api_key: str, language: str = "en", *,
                             timeout: float = 10.0) -> str | None:
    """One real /v1/listen handshake for nova-3 (no audio, closed at once); Deepgram's request id."""
    socket = await connect_nova(http, url, api_key, NovaOptions(language=language), timeout=timeout)
    await socket.close()
    return socket.request_id
