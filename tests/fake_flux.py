"""A fake Deepgram Flux server: a real aiohttp WebSocket server at /v2/listen that follows flux.md (and
/v1/listen, Nova-3, and the models endpoint /v1/models, on the same host: fake_nova.py).

It checks the Authorization header and the query like Flux does, decodes the linear16 audio it receives, and
drives TurnInfo from that audio's energy: StartOfTurn when speech begins, an Update every 0.24 s of audio,
EndOfTurn after a stretch of silence (trigger "model"), or after eot_timeout_ms (trigger "timeout"); eager
events when eager_eot_threshold is set. The words come from the test and are revealed while speech lasts.
Faults (a silent socket, a dropped connection, a fatal Error, ...) are switched on through `Script`.

Standalone: python -m tests.fake_flux --port 8765 --transcript "turn on the kitchen light"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

MODELS = {"flux-general-en", "flux-general-multi"}
ENCODINGS = {"linear16", "linear32", "mulaw", "alaw", "opus", "ogg-opus"}
RATES = {8000, 16000, 24000, 44100, 48000}
UPDATE_SECONDS = 0.24
WINDOW_SECONDS = 0.02
PAUSE_SECONDS = 0.3  # silence between two stretches of speech that a "|" in a transcript stands for


def heard_words(transcript: str, segment: int) -> list[str]:
    """The words of a transcript up to its `segment`-th stretch of speech: "set a timer | for five minutes" is
    "set a timer" until the speaker goes on after the pause (so a fake never shows words not yet spoken)."""
    return " ".join(transcript.split("|")[: segment + 1]).split()


@dataclass
class Script:
    """How the fake behaves. Tests change fields between commands."""

    transcripts: list[str] = field(default_factory=lambda: ["turn on the kitchen light"])
    eot_silence: float = 0.26  # silence after speech before a model EndOfTurn (at eot_threshold 0.7)
    eager_silence: float | None = None  # silence before EagerEndOfTurn (when asked for); None: a share of eot's
    word_seconds: float = 0.2  # one more word revealed per this much speech
    speech_rms: float = 300.0  # int16 RMS above which a 20 ms window is speech
    languages: list[str] = field(default_factory=lambda: ["en"])  # reported by the multi model
    forbidden_models: set[str] = field(default_factory=set)  # 403 for these
    # faults
    handshake_status: int | None = None
    handshake_delay: float = 0.0
    message_delay: float = 0.0  # a slow server: every message waits this long
    report_lag: float = 0.0  # audio seconds the reports lag behind the audio received (Deepgram's processing)
    silent_after: float | None = None  # audio seconds after which nothing more is sent (a stuck turn)
    drop_after: float | None = None  # audio seconds after which the socket goes away
    drop_mode: str = "close"  # close | reset
    fatal_after: float | None = None  # audio seconds after which a fatal Error is sent
    malformed_after: float | None = None  # audio seconds after which one malformed message is sent
    malformed_text: str = "{not json"  # what it says
    unknown_messages: bool = False  # send an unknown message type with every Update
    warning_on_connect: bool = False
    ignore_force_end: bool = False
    no_eot: bool = False  # never end a turn by itself (model or timeout)
    idle_close_after: float | None = None  # close a stream that got no audio (v1: nor KeepAlive) for this long
    drop_streams: set[int] = field(default_factory=set)  # these streams (0-based) drop on their first audio
    timing_log: str | None = None  # append {"tag", "event", "t"} JSON lines (monotonic clock) for benchmarks
    no_turn_force_end: str = "warning"  # with no active turn, ForceEndTurn gets: warning | nothing
    words_after_eot: str | None = None  # the first Update after an EndOfTurn has these words, but no turn starts
    # what real deployments do differently
    force_end_supported: bool = True  # False: ForceEndTurn is an unknown message (fatal, then close)
    configure_failure: bool = False  # answer every Configure with ConfigureFailure
    close_stream_delay: float = 0.0  # CloseStream: send the pending Updates, wait this long, then close
    idle_close_reason: str | None = None  # idle close as a bare close frame 1011 with this reason (v1 style)
    # /v1/listen (Nova-3): normal | no_speech_final (only UtteranceEnd ends) | empty_speech_final |
    # duplicated_finals | swapped_finals | tiny_finals | huge_finals (fake_nova.MODES)
    nova_mode: str = "normal"
    finalize_results: int = 1  # /v1: Finalize answers the buffered audio in this many results (words split)
    keyterm_token_limit: int = 500  # lower it for a Deepgram that counts more tokens than we estimate
    # The host: a self-hosted Flux-only deployment has no /v1/listen (404) and lists no Nova-3; one without
    # Deepgram's models endpoint answers /v1/models with 404.
    nova_served: bool = True
    models_endpoint: bool = True
    extra_nova_languages: tuple[str, ...] = ()  # Nova-3 codes beyond fake_nova.LANGUAGES (accepted and listed)


@dataclass
class StreamRecord:
    """What one client stream did, for assertions."""

    query: dict[str, list[str]]
    audio_bytes: int = 0
    frame_sizes: list[int] = field(default_factory=list)
    client_messages: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # loop time of each sent message
    closed: bool = False
    tag: str | None = None  # a keyterm "bench-..." a benchmark client sent, to match timings across processes
    over_limit_configure: bool = False  # a Configure's keyterms were over the token limit

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / 2 / int(self.query["sample_rate"][0])

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("event") == name]


class EnergyWindows:
    """What a fake hears: the audio in windows of WINDOW_SECONDS, each speech or silence by its energy, and the
    messages each window brings (`_step`, the API's own)."""

    pending: bytearray
    window: int  # bytes of one window
    script: Script
    t: float  # the audio clock: seconds received
    heard_until = 0.0  # the audio clock at the end of the last speech window: where the last word heard ends
    segment = 0  # stretches of speech heard so far, less one (a pause of PAUSE_SECONDS separates two)
    _quiet = 0.0
    _spoke = False

    def feed(self, pcm: bytes, flush: bool = False) -> list[dict[str, Any]]:
        """The messages the audio brings; with a report lag, the newest `report_lag` seconds wait (`flush`: none)."""
        self.pending += pcm
        out: list[dict[str, Any]] = []
        lag = 0 if flush else round(self.script.report_lag / WINDOW_SECONDS) * self.window
        while len(self.pending) >= self.window + lag:
            chunk = np.frombuffer(bytes(self.pending[: self.window]), dtype="<i2").astype(np.float64)
            del self.pending[: self.window]
            speech = float(np.sqrt(np.mean(chunk * chunk))) > self.script.speech_rms
            if speech:
                if self._spoke and self._quiet >= PAUSE_SECONDS:
                    self.segment += 1
                self._spoke, self._quiet = True, 0.0
                self.heard_until = self.t + WINDOW_SECONDS  # this window's end: its messages time words by it
            else:
                self._quiet += WINDOW_SECONDS
            out += self._step(speech)
        return out

    def _step(self, speech: bool) -> list[dict[str, Any]]:
        raise NotImplementedError


class TurnEngine(EnergyWindows):
    """Turns received audio into TurnInfo messages, on audio time."""

    def __init__(self, script: Script, rate: int, eot_threshold: float, eager: float | None, timeout_ms: int) -> None:
        self.script = script
        self.rate = rate
        self.window = int(rate * WINDOW_SECONDS) * 2
        self.model_eot = eot_threshold < 1.0
        self.eot_silence = script.eot_silence * (eot_threshold / 0.7)
        self.eager_silence = (None if eager is None else script.eager_silence if script.eager_silence is not None
                              else self.eot_silence * (eager / eot_threshold) * 0.6)
        self.timeout = timeout_ms / 1000
        self.t = 0.0
        self.next_update = UPDATE_SECONDS
        self.turn_index = 0
        self.in_turn = False
        self.turn_start = 0.0
        self.speech = 0.0
        self.silence = 0.0
        self.eager_sent = False
        self.words_after_sent = False
        self.pending = bytearray()

    def _words(self) -> list[str]:
        texts = self.script.transcripts
        return heard_words(texts[min(self.turn_index, len(texts) - 1)], self.segment) if texts else []

    def _text(self, final: bool = False) -> str:
        words = self._words()
        shown = len(words) if final else min(len(words), math.ceil(self.speech / self.script.word_seconds))
        return " ".join(words[:shown])

    def _info(self, event: str, final: bool = False, **extra: Any) -> dict[str, Any]:
        text = self._text(final) if self.in_turn or final else ""
        msg = {
            "type": "TurnInfo",
            "event": event,
            "turn_index": self.turn_index,
            "audio_window_start": round(self.turn_start if self.in_turn else self.t, 3),
            "audio_window_end": round(self.t, 3),
            "transcript": text,
            "words": self._timed(text.split(), 0.97),
            "end_of_turn_confidence": 0.9 if event == "EndOfTurn" else 0.1,
            **extra,
        }
        return msg

    def _timed(self, words: list[str], confidence: float) -> list[dict[str, Any]]:
        """Words with Flux's timings: one per `word_seconds` from the turn's start, the last one ending where
        speech was last heard."""
        step = self.script.word_seconds
        return [{"word": w, "confidence": confidence, "start": round(self.turn_start + i * step, 3),
                 "end": round(self.heard_until if i == len(words) - 1
                              else min(self.turn_start + (i + 1) * step, self.heard_until), 3)}
                for i, w in enumerate(words)]

    def _step(self, speech: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self.t += WINDOW_SECONDS
        if speech:
            if not self.in_turn:
                self.in_turn, self.turn_start, self.speech = True, self.t - WINDOW_SECONDS, 0.0
                out.append(self._info("StartOfTurn"))
            elif self.eager_sent:
                self.eager_sent = False
                out.append(self._info("TurnResumed"))
            self.speech += WINDOW_SECONDS
            self.silence = 0.0
        elif self.in_turn:
            self.silence += WINDOW_SECONDS
        if self.t + 1e-9 >= self.next_update:
            self.next_update += UPDATE_SECONDS
            update = self._info("Update")
            if not self.in_turn and self.turn_index and self.script.words_after_eot and not self.words_after_sent:
                self.words_after_sent = True
                update["transcript"] = self.script.words_after_eot
                update["words"] = [{"word": w, "confidence": 0.5} for w in self.script.words_after_eot.split()]
            out.append(update)
        if self.in_turn and not speech and not self.script.no_eot:
            if self.eager_silence is not None and not self.eager_sent and self.silence >= self.eager_silence:
                self.eager_sent = True
                out.append(self._info("EagerEndOfTurn", final=True))
            if self.model_eot and self.silence >= self.eot_silence:
                out.append(self.end_turn("model"))
            elif self.silence >= self.timeout:
                out.append(self.end_turn("timeout"))
        return out

    def end_turn(self, trigger: str) -> dict[str, Any]:
        msg = self._info("EndOfTurn", final=True, trigger=trigger)
        if trigger == "manual":
            # A forced end keeps only the words heard so far.
            msg["transcript"] = self._text()
            msg["words"] = self._timed(msg["transcript"].split(), 0.9)
        self.in_turn, self.eager_sent, self.silence = False, False, 0.0
        self.turn_index += 1
        self.segment, self._spoke = 0, False
        return msg


def _bench_tag(keyterms: list[str]) -> str | None:
    return next((term for term in keyterms if term.startswith("bench-")), None)


def _bad(status: int, text: str, code: str) -> web.Response:
    request_id = str(uuid.uuid4())
    return web.json_response(
        {"err_code": code, "err_msg": text, "request_id": request_id},
        status=status,
        headers={"dg-error": text, "dg-request-id": request_id},
    )


def _check_query(query: dict[str, list[str]], script: Script) -> web.Response | None:
    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    model = one("model")
    if model is None:
        return _bad(400, "Missing required parameter: model", "INVALID_QUERY_PARAMETER")
    if model not in MODELS:
        return _bad(400, f"Unknown model: {model}", "INVALID_QUERY_PARAMETER")
    if model in script.forbidden_models:
        return _bad(403, f"Project does not have access to the requested model: {model}", "INSUFFICIENT_PERMISSIONS")
    if one("encoding") not in ENCODINGS:
        return _bad(400, "encoding is required for raw audio", "INVALID_QUERY_PARAMETER")
    try:
        rate = int(one("sample_rate") or "0")
        eot = float(one("eot_threshold") or 0.7)
        eager = None if one("eager_eot_threshold") is None else float(one("eager_eot_threshold") or 0)
        timeout = int(one("eot_timeout_ms") or 5000)
    except ValueError:
        return _bad(400, "Malformed numeric parameter", "INVALID_QUERY_PARAMETER")
    if rate not in RATES:
        return _bad(400, f"Unsupported sample_rate: {rate}", "INVALID_QUERY_PARAMETER")
    if not 0.5 <= eot <= 1.0:
        return _bad(400, "eot_threshold must be between 0.5 and 1.0", "INVALID_QUERY_PARAMETER")
    if eager is not None and not (0.3 <= eager <= 0.9 and eager <= eot):
        return _bad(400, "eager_eot_threshold must be between 0.3 and 0.9 and <= eot_threshold", "INVALID_QUERY_PARAMETER")
    if not 500 <= timeout <= 60000:
        return _bad(400, "eot_timeout_ms must be between 500 and 60000", "INVALID_QUERY_PARAMETER")
    if query.get("language_hint") and model != "flux-general-multi":
        return _bad(400, "language_hint is only supported by flux-general-multi", "INVALID_QUERY_PARAMETER")
    if one("mip_opt_out") not in (None, "true", "false"):
        return _bad(400, "mip_opt_out must be true or false", "INVALID_QUERY_PARAMETER")
    if any(len(tag) > 128 for tag in query.get("tag", [])):
        return _bad(400, "tag must be at most 128 characters", "INVALID_QUERY_PARAMETER")
    return keyterm_refusal(query.get("keyterm", []), script)


# Scripts written without spaces (and Hangul): Deepgram's tokens are no larger than a character there.
_CHARACTER_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH KATAKANA", "HANGUL", "THAI", "LAO", "KHMER",
                      "MYANMAR", "TIBETAN", "IDEOGRAPHIC", "BOPOMOFO")


def deepgram_tokens(term: str) -> int:
    """Keyterm tokens as this fake counts them: never fewer than Deepgram's tokenizer could (at most four
    characters of a word a token, at least one a word; one a character in scripts written without spaces)."""
    total = 0
    for word in term.split():
        dense = sum(1 for char in word if unicodedata.name(char, "").startswith(_CHARACTER_SCRIPTS))
        total += dense + (max(1, math.ceil((len(word) - dense) / 4)) if len(word) > dense else 0)
    return total


def keyterm_refusal(keyterms: list[str], script: Script) -> web.Response | None:
    """Deepgram's answer to keyterms over its limit: HTTP 400 in its own words."""
    if sum(deepgram_tokens(term) for term in keyterms) <= script.keyterm_token_limit:
        return None
    return _bad(400, f"Keyterm limit exceeded. The maximum number of tokens across all keyterms is "
                     f"{script.keyterm_token_limit}", "INVALID_QUERY_PARAMETER")


class FakeFlux:
    """Start with `await fake.start()`; point clients at `fake.url`; read `fake.streams` afterwards."""

    def __init__(self, api_key: str = "test-key", script: Script | None = None) -> None:
        self.api_key = api_key
        self.script = script or Script()
        self.streams: list[StreamRecord] = []
        self.handshakes = 0  # attempts, including refused ones
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._stopping = asyncio.Event()  # ends injected handshake delays when the fake stops
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/listen"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._stopping.clear()
        app = web.Application()
        app.router.add_get("/v2/listen", self._handle)
        from .fake_nova import handle_models, handle_nova  # same host, same process: one fake Deepgram

        async def nova(request: web.Request) -> web.StreamResponse:
            return await handle_nova(self, request)

        async def models(request: web.Request) -> web.StreamResponse:
            return await handle_models(self, request)

        app.router.add_get("/v1/listen", nova)
        app.router.add_get("/v1/models", models)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)  # cut hung handlers short
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    @property
    def nova_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/listen"

    def timing_logger(self, record: StreamRecord) -> Any:
        """log(event, **extra): timing lines for benchmarks, as _Stream.log_timing writes them."""
        def log(event: str, **extra: object) -> None:
            if self.script.timing_log and (record.tag or event == "connected"):
                with open(self.script.timing_log, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"tag": record.tag, "event": event, "t": time.monotonic(), **extra}) + "\n")
        return log

    async def stop(self) -> None:
        self._stopping.set()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        script = self.script
        if script.handshake_delay:
            try:
                await asyncio.wait_for(self._stopping.wait(), script.handshake_delay)
                return web.Response(status=503)  # stopping
            except TimeoutError:
                pass
        if script.handshake_status is not None:
            return _bad(script.handshake_status, f"Injected failure {script.handshake_status}", "INJECTED")
        auth = request.headers.get("Authorization", "")
        if auth != f"Token {self.api_key}":
            return _bad(401, "Invalid credentials.", "INVALID_AUTH")
        query = {key: request.query.getall(key) for key in request.query.keys()}
        if (refused := _check_query(query, script)) is not None:
            return refused
        record = StreamRecord(query=query, tag=_bench_tag(query.get("keyterm", [])))
        self.streams.append(record)
        request_id = str(uuid.uuid4())
        ws = web.WebSocketResponse(autoping=True)
        ws.headers["dg-request-id"] = request_id
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await _Stream(ws, record, script, request_id, len(self.streams) - 1).run()
        finally:
            self._sockets.discard(ws)
            record.closed = True
        return ws



async def inject_faults(stream: Any, seconds: float, fatal: Callable[[], Awaitable[None]]) -> bool:
    """The Script's faults due at `seconds` of audio, the same on both APIs (only a fatal error is said in each
    API's own way): drop or reset the socket, fail, go silent, send a malformed message. False: the stream ended."""
    script, ws = stream.script, stream.ws
    if script.drop_after is not None and seconds >= script.drop_after:
        if script.drop_mode == "reset":
            transport = ws._req.transport if ws._req else None
            if transport is not None:
                transport.abort()
        else:
            await ws.close()
        return False
    if script.fatal_after is not None and seconds >= script.fatal_after:
        await fatal()
        return False
    if script.silent_after is not None and seconds >= script.silent_after:
        stream.muted = True
    if script.malformed_after is not None and seconds >= script.malformed_after and not stream.malformed_sent:
        stream.malformed_sent = True
        if not stream.muted:
            await ws.send_str(script.malformed_text)
    return True

class _Stream:
    def __init__(self, ws: web.WebSocketResponse, record: StreamRecord, script: Script, request_id: str,
                 index: int) -> None:
        self.ws, self.record, self.script, self.index = ws, record, script, index
        q = record.query
        self.engine = TurnEngine(
            script,
            int(q["sample_rate"][0]),
            float(q.get("eot_threshold", ["0.7"])[0]),
            float(q["eager_eot_threshold"][0]) if "eager_eot_threshold" in q else None,
            int(q.get("eot_timeout_ms", ["5000"])[0]),
        )
        self.multi = q["model"][0] == "flux-general-multi"
        self.sequence = 0
        self.request_id = request_id
        self.muted = False
        self.malformed_sent = False

    def log_timing(self, event: str, **extra: object) -> None:
        if self.script.timing_log and (self.record.tag or event == "connected"):
            with open(self.script.timing_log, "a", encoding="utf-8") as log:
                entry = {"tag": self.record.tag, "event": event, "t": time.monotonic(), **extra}
                log.write(json.dumps(entry) + "\n")

    async def send(self, message: dict[str, Any]) -> None:
        if self.muted or self.ws.closed:
            return
        if message.get("event") == "EndOfTurn":
            self.log_timing("end_of_turn")
        elif message.get("event") == "EagerEndOfTurn":
            self.log_timing("eager_end_of_turn")
        if self.script.message_delay:
            await asyncio.sleep(self.script.message_delay)
        message = {**message, "sequence_id": self.sequence}
        if message.get("type") == "TurnInfo" and self.multi:
            message["languages"] = list(self.script.languages)
        self.sequence += 1
        self.record.sent.append(message)
        self.record.sent_at.append(asyncio.get_running_loop().time())
        await self.ws.send_str(json.dumps(message))

    async def fatal(self, code: str, description: str) -> None:
        message = {"type": "Error", "sequence_id": self.sequence, "code": code, "description": description}
        self.record.sent.append(message)
        await self.ws.send_str(json.dumps(message))
        await self.close_without_code()

    async def close_without_code(self) -> None:
        """Flux closes with an empty close frame: clients see 1005."""
        if not self.ws.closed:
            try:
                await self.ws.send_frame(b"", WSMsgType.CLOSE)
            except ConnectionResetError:  # the client went first
                return
            try:
                async with asyncio.timeout(1.0):
                    await self.ws.receive()  # the client's close reply
            except TimeoutError:
                pass

    async def run(self) -> None:
        self.log_timing("connected")
        try:
            await self._run()
        finally:
            self.log_timing("closed", audio_bytes=self.record.audio_bytes)

    async def _run(self) -> None:
        await self.send({"type": "Connected", "request_id": self.request_id})
        if self.script.warning_on_connect:
            await self.send({"type": "Warning", "code": "INJECTED_WARNING", "description": "just a warning"})
        while True:
            try:
                async with asyncio.timeout(self.script.idle_close_after if not self.record.audio_bytes else None):
                    msg = await self.ws.receive()
            except TimeoutError:
                if self.script.idle_close_reason is not None:
                    await self.ws.close(code=1011, message=self.script.idle_close_reason.encode())
                else:
                    await self.fatal("INACTIVE_CLIENT", "No audio was received within the inactivity timeout")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if msg.type == WSMsgType.BINARY:
                if not await self.on_audio(msg.data):
                    return
            elif msg.type == WSMsgType.TEXT:
                self.record.client_messages.append(msg.data)
                if not await self.on_control(msg.data):
                    return
            else:
                return

    async def on_audio(self, data: bytes) -> bool:
        script = self.script
        if not data:
            await self.fatal("UNPARSABLE_CLIENT_MESSAGE", "Empty binary frame")
            return False
        if self.index in script.drop_streams and not self.record.audio_bytes:
            await self.ws.close()
            return False
        if not self.record.audio_bytes:
            self.log_timing("first_audio")
        self.record.audio_bytes += len(data)
        self.record.frame_sizes.append(len(data))
        seconds = self.record.audio_seconds
        if not await inject_faults(self, seconds, lambda: self.fatal("INTERNAL_SERVER_ERROR", "Injected internal error")):
            return False
        for message in self.engine.feed(data):
            await self.send(message)
            if script.unknown_messages and message.get("event") == "Update":
                await self.send({"type": "FutureMessageType", "payload": {"x": 1}})
        return True

    async def on_control(self, text: str) -> bool:
        try:
            message = json.loads(text)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            kind = None
        if kind == "ForceEndTurn" and not self.script.force_end_supported:
            kind = None  # a deployment that predates ForceEndTurn
        if kind == "ForceEndTurn":
            if self.script.ignore_force_end:
                return True
            if self.engine.in_turn:
                await self.send(self.engine.end_turn("manual"))
            elif self.script.no_turn_force_end == "warning":
                await self.send({"type": "Warning", "code": "FORCE_END_TURN_NO_ACTIVE_TURN",
                                 "description": "ForceEndTurn received with no active turn"})
            return True
        if kind == "CloseStream":
            for lagging in self.engine.feed(b"", flush=True):  # decode what was received
                await self.send(lagging)
            if self.script.close_stream_delay:
                # Decode what was received: the pending Updates come first, then the close (still no EndOfTurn).
                await self.send(self.engine._info("Update"))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.script.close_stream_delay):
                        await self.ws.receive()  # unless the client gives up and closes first

            await self.close_without_code()  # no EndOfTurn: CloseStream does not finalize
            return False
        if kind == "Configure":
            self.record.tag = _bench_tag(message.get("keyterms") or []) or self.record.tag
            thresholds = message.get("thresholds") or {}
            eot = thresholds.get("eot_threshold", 0.7)
            if keyterm_refusal(message.get("keyterms") or [], self.script) is not None:
                # Over the limit a Configure is not refused: the stream stops transcribing (Deepgram's changelog).
                self.record.over_limit_configure = True
                self.muted = True
            elif self.script.configure_failure or not 0.5 <= eot <= 1.0:
                # The spec's ConfigureFailure says which request it answers, and nothing about why.
                await self.send({"type": "ConfigureFailure", "request_id": self.request_id})
            else:
                await self.send({"type": "ConfigureSuccess", "thresholds": thresholds,
                                 "keyterms": message.get("keyterms", [])})
            return True
        await self.fatal("UNPARSABLE_CLIENT_MESSAGE", "Could not parse client message")
        return False


async def _main() -> None:
    parser = argparse.ArgumentParser(description="Fake Deepgram for tests and benchmarks: Flux at /v2/listen and "
                                                 "Nova-3 at /v1/listen, on one port, with one key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--transcript", action="append",
                        help="text of each Flux turn, in order (Nova-3 says them all in one command)")
    parser.add_argument("--eot-silence", type=float, default=0.26)
    parser.add_argument("--handshake-delay", type=float, default=0.0)
    parser.add_argument("--no-eot", action="store_true", help="never end a turn by itself")
    parser.add_argument("--timing-log", help="append timing events (JSON lines, monotonic clock) to this file")
    parser.add_argument("--nova-mode", default="normal", help="how /v1/listen misbehaves (fake_nova.MODES)")
    args = parser.parse_args()
    script = Script(eot_silence=args.eot_silence, handshake_delay=args.handshake_delay, no_eot=args.no_eot,
                    timing_log=args.timing_log, nova_mode=args.nova_mode)
    if args.transcript:
        script.transcripts = args.transcript
    fake = FakeFlux(api_key=args.api_key, script=script)
    await fake.start(args.host, args.port)
    print(f"fake Flux listening on ws://{args.host}:{fake.port}/v2/listen, Nova-3 on /v1/listen (key "
          f"{args.api_key!r})", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass
