"""The fake Deepgram's /v1/listen: Nova-3 live streaming, served by FakeFlux on the same host and process.

Follows nova.md like fake_flux follows flux.md: it checks the query as Deepgram does, decodes the linear16
audio it receives and drives Results from that audio's energy (20 ms windows): interim results every second of
audio (words revealed while speech lasts), a settled (is_final) segment every 3 s of continuous speech,
speech_final after `endpointing` ms of silence, UtteranceEnd once `utterance_end_ms` passed after the last
word, SpeechStarted with vad_events (Script.no_eot: neither end ever comes). Finalize flushes the buffered audio (a from_finalize result, or nothing
when nothing is buffered); CloseStream flushes, sends Metadata and closes. Deepgram's close codes for failures:
1011 NET-0000 / NET-0001, 1008 DATA-0000. Modes that disagree with us are switched on through Script.nova_mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from .fake_flux import (
    ENCODINGS,
    RATES,
    WINDOW_SECONDS,
    EnergyWindows,
    Script,
    StreamRecord,
    _bad,
    _bench_tag,
    inject_faults,
)

INTERIM_SECONDS = 1.0  # "typically every second" (Deepgram, Utterance End)
SEGMENT_SECONDS = 3.0  # continuous speech settles a segment this often (Deepgram finalizes long speech too)
IDLE_LIMIT = 10.0  # no audio and no KeepAlive for this long closes the stream (1011 NET-0001)
# Deepgram's Nova-3 monolingual codes (Models & Languages Overview, 2026-11); "multi" is the 55-language model.
LANGUAGES = {
    "en", "en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en-ZA", "en-SG", "en-PH", "be", "bg", "bn",
    "bs", "ca", "cs", "da", "da-DK", "de", "de-CH", "el", "es", "es-419", "et", "fi", "fr", "fr-CA", "hi", "hr",
    "hu", "id", "it", "ja", "kn", "ko", "ko-KR", "lt", "lv", "mk", "mr", "ms", "ne", "nl", "nl-BE", "no", "pa",
    "pa-IN", "pl", "pt", "pt-BR", "pt-PT", "ro", "ru", "sk", "sl", "sr", "sv", "sv-SE", "ta", "te", "tl", "tr", "uk",
    "vi", "zh", "zh-CN", "zh-Hans", "zh-TW", "zh-Hant", "multi",
}
MODES = {"normal", "no_speech_final", "empty_speech_final"}


def check_nova_query(query: dict[str, list[str]], script: Script) -> web.Response | None:
    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    model = one("model") or "base"
    if model != "nova-3":
        return _bad(400, f"No such model: {model} (this fake serves nova-3)", "INVALID_QUERY_PARAMETER")
    if model in script.forbidden_models:
        return _bad(403, f"Project does not have access to the requested model: {model}", "INSUFFICIENT_PERMISSIONS")
    language = one("language") or "en"
    if language not in LANGUAGES:
        return _bad(400, f"No such model/language combination: {model}/{language}", "INVALID_QUERY_PARAMETER")
    if query.get("language_hint") and language != "multi":
        return _bad(400, "language_hint requires language=multi", "INVALID_QUERY_PARAMETER")
    if one("encoding") not in ENCODINGS:
        return _bad(400, "encoding is required for raw audio", "INVALID_QUERY_PARAMETER")
    try:
        rate = int(one("sample_rate") or "0")
        channels = int(one("channels") or "1")
        endpointing = one("endpointing") or "10"
        if endpointing != "false":
            int(endpointing)
        utterance_end = None if one("utterance_end_ms") is None else int(one("utterance_end_ms") or "")
    except ValueError:
        return _bad(400, "Malformed numeric parameter", "INVALID_QUERY_PARAMETER")
    if rate not in RATES or channels != 1:
        return _bad(400, f"Unsupported sample_rate or channels: {rate}/{channels}", "INVALID_QUERY_PARAMETER")
    if utterance_end is not None and one("interim_results") != "true":
        return _bad(400, "utterance_end_ms requires interim_results=true", "INVALID_QUERY_PARAMETER")
    for flag in ("interim_results", "vad_events", "smart_format", "punctuate", "mip_opt_out"):
        if one(flag) not in (None, "true", "false"):
            return _bad(400, f"{flag} must be true or false", "INVALID_QUERY_PARAMETER")
    if any(len(tag) > 128 for tag in query.get("tag", [])):
        return _bad(400, "tag must be at most 128 characters", "INVALID_QUERY_PARAMETER")
    if sum(len(term.split()) for term in query.get("keyterm", [])) > 500:
        return _bad(400, "keyterm exceeds 500 tokens", "INVALID_QUERY_PARAMETER")
    return None


class NovaEngine(EnergyWindows):
    """Turns received audio into /v1/listen messages, on audio time."""

    def __init__(self, script: Script, query: dict[str, list[str]]) -> None:
        self.script = script
        self.rate = int(query["sample_rate"][0])
        self.window = int(self.rate * WINDOW_SECONDS) * 2
        endpointing = query.get("endpointing", ["10"])[0]
        self.endpointing = None if endpointing == "false" else int(endpointing) / 1000
        self.utterance_end = int(query["utterance_end_ms"][0]) / 1000 if "utterance_end_ms" in query else None
        self.interim = query.get("interim_results", ["false"])[0] == "true"
        self.vad_events = query.get("vad_events", ["false"])[0] == "true"
        self.multi = query.get("language", ["en"])[0] == "multi"
        self.mode = script.nova_mode
        self.t = 0.0
        self.final_end = 0.0  # audio time up to which results are final
        self.next_interim = INTERIM_SECONDS
        self.in_utterance = False
        self.total_speech = 0.0  # speech over the whole stream
        self.silence = 0.0
        self.since_segment = 0.0
        self.settled = 0  # words already sent as final
        self.last_word_end: float | None = None  # pending UtteranceEnd
        self.pending = bytearray()

    def _words(self) -> list[str]:
        """The stream's words: the script's transcripts in order (one command may span several utterances)."""
        return " ".join(self.script.transcripts).split()

    def _shown(self) -> int:
        """Words heard so far: one more per `word_seconds` of speech, counted over the whole stream, so an
        endpoint at a pause mid-command settles only the words before the pause."""
        return min(len(self._words()), math.ceil(self.total_speech / self.script.word_seconds - 1e-9))

    def results(self, *, final: bool, words: list[str], speech_final: bool = False,
                from_finalize: bool = False) -> dict[str, Any]:
        start = self.final_end
        text = " ".join(words)
        step = (self.t - start) / max(1, len(words))
        alternative: dict[str, Any] = {
            "transcript": text,
            "confidence": 0.98 if text else 0.0,
            # spread over the segment, the last ending where speech was last heard (not after the silence)
            "words": [{"word": w, "start": round(start + i * step, 3),
                       "end": round(max(start, self.heard_until) if i == len(words) - 1 else start + (i + 1) * step,
                                    3), "confidence": 0.98, "punctuated_word": w} for i, w in enumerate(words)],
        }
        if self.multi:
            alternative["languages"] = list(self.script.languages) if text else []
        message = {
            "type": "Results", "channel_index": [0, 1], "start": round(start, 3),
            "duration": round(self.t - start, 3), "is_final": final, "speech_final": speech_final,
            "from_finalize": from_finalize, "channel": {"alternatives": [alternative]},
        }
        if final:
            self.final_end = self.t
        return message

    def _unsettled(self) -> list[str]:
        return self._words()[self.settled : self._shown()]

    def _step(self, speech: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self.t += WINDOW_SECONDS
        if speech:
            if not self.in_utterance:
                self.in_utterance, self.since_segment = True, 0.0
                if self.vad_events:
                    out.append({"type": "SpeechStarted", "channel": [0], "timestamp": round(self.t - WINDOW_SECONDS, 3)})
            self.total_speech += WINDOW_SECONDS
            self.since_segment += WINDOW_SECONDS
            self.silence = 0.0
            self.last_word_end = self.t
        elif self.in_utterance:
            self.silence += WINDOW_SECONDS
        if self.in_utterance and self.since_segment >= SEGMENT_SECONDS and self._unsettled():
            words = self._unsettled()
            out.append(self.results(final=True, words=words))
            self.settled += len(words)
            self.since_segment = 0.0
        if self.in_utterance and self.endpointing is not None and self.silence >= max(self.endpointing, 0.01):
            out += self._endpoint()
        if self.interim and self.t + 1e-9 >= self.next_interim:
            self.next_interim += INTERIM_SECONDS
            out.append(self.results(final=False, words=self._unsettled()))
        if (self.utterance_end is not None and self.last_word_end is not None and not self.in_utterance
                and self.t - self.last_word_end >= self.utterance_end):
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(self.last_word_end, 3)})
            self.last_word_end = None
        return out

    def _endpoint(self) -> list[dict[str, Any]]:
        words = self._unsettled()
        self.settled += len(words)
        if self.script.no_eot:  # the VAD never hears the silence and word timings never show the gap
            out = [self.results(final=True, words=words)]
            self.last_word_end = None
        elif self.mode == "normal":
            out = [self.results(final=True, words=words, speech_final=True)]
        elif self.mode == "empty_speech_final":
            out = [self.results(final=True, words=words), self.results(final=True, words=[], speech_final=True)]
        else:  # no_speech_final: a noisy room, the VAD never hears the silence; only UtteranceEnd will come
            out = [self.results(final=True, words=words)]
        self.in_utterance, self.silence = False, 0.0
        return out

    def flush(self, from_finalize: bool) -> dict[str, Any] | None:
        """The buffered audio as a final result; None when nothing is buffered."""
        if self.t <= self.final_end + 1e-9:
            return None
        words = self._unsettled()
        self.settled += len(words)
        return self.results(final=True, words=words, from_finalize=from_finalize)


async def handle_nova(fake: Any, request: web.Request) -> web.StreamResponse:
    """FakeFlux's /v1/listen handler: the same key, faults and stream records as /v2/listen."""
    fake.handshakes += 1
    script: Script = fake.script
    if script.handshake_delay:
        try:
            await asyncio.wait_for(fake._stopping.wait(), script.handshake_delay)
            return web.Response(status=503)
        except TimeoutError:
            pass
    if script.handshake_status is not None:
        return _bad(script.handshake_status, f"Injected failure {script.handshake_status}", "INJECTED")
    if request.headers.get("Authorization", "") != f"Token {fake.api_key}":
        return _bad(401, "Invalid credentials.", "INVALID_AUTH")
    query = {key: request.query.getall(key) for key in request.query.keys()}
    if (refused := check_nova_query(query, script)) is not None:
        return refused
    record = StreamRecord(query=query, tag=_bench_tag(query.get("keyterm", [])))
    fake.streams.append(record)
    request_id = str(uuid.uuid4())
    ws = web.WebSocketResponse(autoping=True)
    ws.headers["dg-request-id"] = request_id
    await ws.prepare(request)
    fake._sockets.add(ws)
    try:
        await _NovaStream(ws, record, script, request_id, fake).run()
    finally:
        fake._sockets.discard(ws)
        record.closed = True
    return ws


class _NovaStream:
    def __init__(self, ws: web.WebSocketResponse, record: StreamRecord, script: Script, request_id: str,
                 fake: Any) -> None:
        self.ws, self.record, self.script, self.request_id = ws, record, script, request_id
        self.engine = NovaEngine(script, record.query)
        self.muted = False
        self.malformed_sent = False
        self.log_timing = fake.timing_logger(record)

    async def send(self, message: dict[str, Any]) -> None:
        if self.muted or self.ws.closed:
            return
        if message.get("speech_final") or message.get("type") == "UtteranceEnd":
            self.log_timing("end_of_turn")
        if self.script.message_delay:
            await asyncio.sleep(self.script.message_delay)
        if message.get("type") == "Results":
            message["metadata"] = {"request_id": self.request_id, "model_info": {"name": "general-nova-3"}}
        self.record.sent.append(message)
        self.record.sent_at.append(asyncio.get_running_loop().time())
        await self.ws.send_str(json.dumps(message))

    async def close(self, code: int, reason: str) -> None:
        """Deepgram ends a v1 stream with a close frame; failures carry their code in the reason."""
        await self.ws.close(code=code, message=reason.encode())

    async def run(self) -> None:
        self.log_timing("connected")
        try:
            await self._run()
        finally:
            self.log_timing("closed", audio_bytes=self.record.audio_bytes)

    async def _run(self) -> None:
        idle = self.script.idle_close_after if self.script.idle_close_after is not None else IDLE_LIMIT
        while True:
            try:
                async with asyncio.timeout(idle):
                    msg = await self.ws.receive()
            except TimeoutError:
                await self.close(1011, "NET-0001")
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

    async def on_audio(self, data: bytes) -> bool:
        script = self.script
        if not data:  # v1 takes an empty frame as the old way to close; we never send one
            await self.finish()
            return False
        if len(data) % 2:
            await self.close(1008, "DATA-0000")  # linear16 cannot have half a sample
            return False
        if not self.record.audio_bytes:
            self.log_timing("first_audio")
        self.record.audio_bytes += len(data)
        self.record.frame_sizes.append(len(data))
        seconds = self.record.audio_seconds
        if not await inject_faults(self, seconds, lambda: self.close(1011, "NET-0000")):
            return False
        for message in self.engine.feed(data):
            await self.send(message)
            if script.unknown_messages and message.get("type") == "Results":
                await self.send({"type": "FutureMessageType", "payload": {"x": 1}})
        return True

    async def on_control(self, text: str) -> bool:
        try:
            kind = json.loads(text)["type"]
        except (ValueError, KeyError, TypeError):
            kind = None
        if kind == "KeepAlive":
            return True
        if kind == "Finalize":
            if not self.script.ignore_force_end and (result := self.engine.flush(from_finalize=True)) is not None:
                await self.send(result)
            return True
        if kind == "CloseStream":
            await self.finish()
            return False
        # v1 ignores what it does not understand (with a warning in its logs); no close
        return True

    async def finish(self) -> None:
        """CloseStream: what remains, then Metadata, then a normal close (a silent server stays silent)."""
        if self.muted:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self.ws.receive()  # until the client gives up
            return
        if (result := self.engine.flush(from_finalize=False)) is not None:
            await self.send(result)
        if self.script.close_stream_delay:  # a slow flush, unless the client gives up and closes first
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.script.close_stream_delay):
                    await self.ws.receive()
        await self.send({"type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
                         "duration": round(self.engine.t, 3), "channels": 1,
                         "model_info": {"general-nova-3": {"name": "general-nova-3", "arch": "nova-3"}}})
        await self.close(1000, "")
