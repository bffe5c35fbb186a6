"""Deepgram Flux (/v2/listen) WebSocket client: stream options, typed messages, typed failures."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Union

import aiohttp

from ..common.bounds import check_range
from .errors import (
    DeepgramAuthError,
    FluxBadRequestError,
    DeepgramError,
    FluxForbiddenError,
    FluxRateLimitError,
    DeepgramStreamError,
    DeepgramTimeoutError,
    DeepgramUnavailableError,
    error_for_status,
)
from .keyterms import KEYTERM_TOKEN_BUDGET, Keyterms, estimate_tokens, trim_keyterms
from .stream import DeepgramSocket, UnknownMessage, open_stream

_LOGGER = logging.getLogger(__name__)



# Failures live in errors.py (one table), keyterms in keyterms.py; re-exported here for the callers that import
# them with the client.
__all__ = [
    "KEYTERM_TOKEN_BUDGET", "DeepgramAuthError", "FluxBadRequestError", "DeepgramError", "FluxForbiddenError",
    "FluxRateLimitError", "DeepgramStreamError", "DeepgramTimeoutError", "DeepgramUnavailableError", "Keyterms",
    "error_for_status", "estimate_tokens", "trim_keyterms",
]


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class FluxOptions:
    """Everything that goes into the /v2/listen query string."""

    model: str
    sample_rate: int = 16000
    encoding: str = "linear16"
    eot_threshold: float | None = None
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int | None = None
    keyterms: tuple[str, ...] = ()
    language_hints: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    mip_opt_out: bool = False  # opt out of Deepgram's Model Improvement Program

    def validate(self) -> None:
        """Refuse values Flux would answer with a 400, before any network use."""
        validate_thresholds(self.eot_threshold, self.eager_eot_threshold, self.eot_timeout_ms)

    def query(self) -> list[tuple[str, str]]:
        params = [("model", self.model), ("encoding", self.encoding), ("sample_rate", str(self.sample_rate))]
        if self.eot_threshold is not None:
            params.append(("eot_threshold", _number(self.eot_threshold)))
        if self.eager_eot_threshold is not None:
            params.append(("eager_eot_threshold", _number(self.eager_eot_threshold)))
        if self.eot_timeout_ms is not None:
            params.append(("eot_timeout_ms", str(self.eot_timeout_ms)))
        params += [("keyterm", term) for term in self.keyterms]
        params += [("language_hint", hint) for hint in self.language_hints]
        params += [("tag", tag[:128]) for tag in self.tags]
        if self.mip_opt_out:
            params.append(("mip_opt_out", "true"))
        return params


def _number(value: float) -> str:
    return f"{value:g}"


def validate_thresholds(eot: float | None, eager: float | None, timeout_ms: int | None) -> None:
    """Raise ValueError with one readable line for any value outside Flux's documented ranges."""
    if eot is not None:
        check_range("eot_threshold", eot)
    if eager is not None:
        check_range("eager_eot_threshold", eager)
        if eager > (eot if eot is not None else 0.7):
            limit = f"eot_threshold {eot:g}" if eot is not None else "eot_threshold (Flux's default, 0.7)"
            raise ValueError(f"eager_eot_threshold {eager:g} must not exceed {limit}")
    if timeout_ms is not None:
        check_range("eot_timeout_ms", timeout_ms)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Connected:
    request_id: str


@dataclass(frozen=True)
class TurnInfo:
    event: str  # StartOfTurn | Update | EagerEndOfTurn | TurnResumed | EndOfTurn (or new ones)
    turn_index: int
    transcript: str
    audio_window_start: float
    audio_window_end: float
    end_of_turn_confidence: float | None = None
    trigger: str | None = None
    languages: tuple[str, ...] = ()
    words: tuple[dict[str, Any], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class FluxWarning:
    code: str
    description: str


@dataclass(frozen=True)
class FatalError:
    code: str
    description: str


@dataclass(frozen=True)
class ConfigureResult:
    """ConfigureSuccess or ConfigureFailure. A failure says no more than which request it answers (the spec gives
    it `type`, `request_id` and `sequence_id` only): there is no reason to report."""

    success: bool
    request_id: str | None = None
    sequence_id: int | None = None


FluxMessage = Union[Connected, TurnInfo, FluxWarning, FatalError, ConfigureResult, UnknownMessage]


def parse_message(text: str) -> FluxMessage:
    """Parse one server message; anything unexpected becomes UnknownMessage instead of an exception."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        kind = data.get("type")
        if kind == "TurnInfo":
            return TurnInfo(
                event=str(data.get("event", "")),
                turn_index=int(data.get("turn_index", 0)),
                transcript=str(data.get("transcript") or ""),
                audio_window_start=float(data.get("audio_window_start") or 0.0),
                audio_window_end=float(data.get("audio_window_end") or 0.0),
                end_of_turn_confidence=_optional_float(data.get("end_of_turn_confidence")),
                trigger=data.get("trigger"),
                languages=tuple(str(lang) for lang in data.get("languages") or ()),
                words=tuple(w for w in data.get("words") or () if isinstance(w, dict)),
            )
        if kind == "Connected":
            return Connected(request_id=str(data.get("request_id", "")))
        if kind == "Warning":
            return FluxWarning(str(data.get("code", "")), str(data.get("description", "")))
        if kind == "Error":
            return FatalError(str(data.get("code", "")), str(data.get("description", "")))
        if kind in ("ConfigureSuccess", "ConfigureFailure"):
            sequence = data.get("sequence_id")
            return ConfigureResult(kind == "ConfigureSuccess", _optional_str(data.get("request_id")),
                                   sequence if isinstance(sequence, int) else None)
        return UnknownMessage(str(kind), text[:500])
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested too deeply for the decoder
        return UnknownMessage("<malformed>", text[:500])


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- connection


class FluxSocket(DeepgramSocket[FluxMessage]):
    """One open Flux stream. Send audio and control messages; receive typed messages until it closes."""

    service = "Flux"

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, request_id: str | None) -> None:
        super().__init__(ws, request_id, parse_message)

    async def force_end_turn(self) -> None:
        await self._send(self._ws.send_str('{"type":"ForceEndTurn"}'))

    async def configure(self, **config: Any) -> None:
        await self._send(self._ws.send_str(json.dumps({"type": "Configure", **config})))


async def connect_flux(
    http: aiohttp.ClientSession,
    url: str,
    api_key: str,
    options: FluxOptions,
    *,
    timeout: float = 5.0,
) -> FluxSocket:
    """Open a Flux stream. Raises a DeepgramError subclass on any failure, within `timeout` seconds."""
    options.validate()
    ws, request_id = await open_stream(http, url, api_key, options.query(), timeout=timeout, service="Flux")
    return FluxSocket(ws, request_id)


async def verify_flux_access(http: aiohttp.ClientSession, url: str, api_key: str, model: str, *, timeout: float = 10.0) -> str | None:
    """Check a key, model and endpoint with one real handshake (no audio; the socket is closed at once).

    Returns Deepgram's request id; raises the same typed FluxErrors as `connect`.
    """
    socket = await connect_flux(http, url, api_key, FluxOptions(model=model), timeout=timeout)
    await socket.close()
    return socket.request_id
