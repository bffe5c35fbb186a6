"""The fake Deepgram's /v1/listen: Nova-3 live streaming, served by FakeFlux on the same host and process.

Follows nova.md like fake_flux follows flux.md: it checks the query as Deepgram does, decodes the linear16
audio it receives and drives Results from that audio's energy (20 ms windows): interim results every second of
audio (words revealed while speech lasts), a settled (is_final) segment every 3 s of continuous speech,
speech_final after `endpointing` ms of silence, UtteranceEnd once `utterance_end_ms` passed after the last
word, SpeechStarted with vad_events (Script.no_eot: neither end ever comes). Finalize flushes the buffered
audio (from_finalize results: one, or Script.finalize_results; nothing when nothing is buffered); CloseStream
flushes, sends Metadata and closes. Deepgram closes a failed stream with 1011 or 1008 and a sentence that
carries the code (CLOSE_REASONS). Modes that disagree with us are switched on through Script.nova_mode.
A VAD that misses the silence, segments settled word by word and sent twice or pairwise swapped, and a
runaway peer that settles without end (tiny segments in a flood, or huge ones) are modes too.
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
    heard_words,
    inject_faults,
    keyterm_refusal,
)

INTERIM_SECONDS = 1.0  # "typically every second" (Deepgram, Utterance End)
SEGMENT_SECONDS = 3.0  # continuous speech settles a segment this often (Deepgram finalizes long speech too)
IDLE_LIMIT = 10.0  # no audio and no KeepAlive for this long closes the stream (1011 NET-0001)
# The close frames' reasons as Deepgram words them: a sentence with a link that names the code. NET-0001's is
# quoted from real output (deepgram-python-sdk #319, pipecat #1113); the others follow its pattern.
CLOSE_REASONS = {
    "NET-0000": "Deepgram did not provide a response message within the timeout window. See https://dpgr.am/net0000",
    "NET-0001": "Deepgram did not receive audio data or a text message within the timeout window. "
                "See https://dpgr.am/net0001",
    "DATA-0000": "Deepgram could not decode the audio data it received. See https://dpgr.am/data0000",
}
# Deepgram's Nova-3 monolingual codes (Models & Languages Overview and changelog, 2026-12); "multi" is the
# 55-language model. Deepgram spells them so, and so does this fake: `zh-hk` is not a code it takes.
LANGUAGES = {
    "en", "en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en-ZA", "en-SG", "en-PH", "be", "bg", "bn",
    "bs", "ca", "cs", "da", "da-DK", "de", "de-CH", "el", "es", "es-419", "et", "fa", "fi", "fr", "fr-CA", "gu",
    "gu-IN", "he", "hi", "hr", "hu", "id", "it", "ja", "kk", "kk-KZ", "kn", "ko", "ko-KR", "lt", "lv", "mk", "mr",
    "ms", "ne", "nl", "nl-BE", "no", "pa", "pa-IN", "pl", "pt", "pt-BR", "pt-PT", "ro", "ru", "sk", "sl", "sr", "sv",
    "sv-SE", "ta", "te", "th", "th-TH", "tl", "tr", "uk", "ur", "vi", "zh", "zh-CN", "zh-Hans", "zh-HK", "zh-TW",
    "zh-Hant", "multi",
}
FLUX_LANGUAGES = {"flux-general-en": ["en"], "flux-general-multi": ["en", "es", "fr", "de", "hi", "ru", "pt", "ja",
                                                                    "it", "nl"]}
MODES = {"normal", "no_speech_final", "empty_speech_final", "duplicated_finals", "swapped_finals", "tiny_finals",
         "huge_finals"}
_WORD_BY_WORD = ("duplicated_finals", "swapped_finals")  # every word its own segment, then the normal endpoint
TINY_PER_WINDOW = 20  # tiny_finals: one-word segments per 20 ms of audio (1,000 per audio second)
HUGE_EVERY = 10  # huge_finals: windows between two segments
HUGE_TEXT = "light " * ((1 << 20) // 6)  # 1 MiB; sent without word timings (they would pass 4 MiB)


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
    if language not in LANGUAGES | set(script.extra_nova_languages):
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
    return keyterm_refusal(query.get("keyterm", []), script)


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
        self.held: dict[str, Any] | None = None  # swapped_finals: a segment waiting to go after the next one
        self.pending = bytearray()

    def _words(self) -> list[str]:
        """The stream's words: the script's transcripts in order (one command may span several utterances)."""
        return heard_words(" ".join(self.script.transcripts), self.segment)

    def _shown(self) -> int:
        """Words heard so far: one more per `word_seconds` of speech, counted over the whole stream, so an
        endpoint at a pause mid-command settles only the words before the pause."""
        return min(len(self._words()), math.ceil(self.total_speech / self.script.word_seconds - 1e-9))

    def results(self, *, final: bool, words: list[str], speech_final: bool = False, from_finalize: bool = False,
                start: float | None = None, text: str | None = None) -> dict[str, Any]:
        """Results from the last final (or `start`) to now; `text` instead of `words`: without word timings."""
        start = self.final_end if start is None else start
        text = " ".join(words) if text is None else text
        step = (self.t - start) / max(1, len(words))
        alternative: dict[str, Any] = {
            "transcript": text,
            "confidence": 0.98 if text else 0.0,
            # spread over the segment, the last ending where speech was last heard (not after the silence), and
            # never past the segment itself
            "words": [{"word": w, "start": round(start + i * step, 5),
                       "end": round(min(self.t, max(start, self.heard_until)) if i == len(words) - 1
                                    else start + (i + 1) * step, 5), "confidence": 0.98, "punctuated_word": w} for i, w in enumerate(words)],
        }
        if self.multi:
            alternative["languages"] = list(self.script.languages) if text else []
        message = {
            "type": "Results", "channel_index": [0, 1], "start": round(start, 5),
            "duration": round(self.t - start, 5), "is_final": final, "speech_final": speech_final,
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
        if self.mode in ("tiny_finals", "huge_finals"):
            return self._runaway()
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
        if self.mode in _WORD_BY_WORD and self._unsettled():
            out += self._settle_word()
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

    def _settle_word(self) -> list[dict[str, Any]]:
        """duplicated_finals: each word's segment twice; swapped_finals: each pair of segments, second first."""
        words = self._unsettled()
        segment = self.results(final=True, words=words)
        self.settled += len(words)
        if self.mode == "duplicated_finals":
            return [segment, dict(segment)]
        if self.held is None:
            self.held = segment
            return []
        held, self.held = self.held, None
        return [segment, held]

    def _release(self) -> list[dict[str, Any]]:
        held, self.held = self.held, None
        return [] if held is None else [held]

    def _runaway(self) -> list[dict[str, Any]]:
        """A peer that settles without end and never marks one: TINY_PER_WINDOW one-word segments per window,
        each in its own slice of it, or a HUGE_TEXT segment every HUGE_EVERY windows."""
        begin = self.t - WINDOW_SECONDS
        if self.mode == "tiny_finals":
            slice_ = WINDOW_SECONDS / TINY_PER_WINDOW
            out = []
            for i in range(TINY_PER_WINDOW):
                out.append(self.results(final=True, words=["a"], start=begin + i * slice_))
                out[-1]["duration"] = round(slice_ / 2, 5)
                out[-1]["channel"]["alternatives"][0]["words"][0]["end"] = round(begin + (i + 0.5) * slice_, 5)
            return out
        if round(self.t / WINDOW_SECONDS) % HUGE_EVERY:
            return []
        return [self.results(final=True, words=[], start=begin, text=HUGE_TEXT)]

    def _endpoint(self) -> list[dict[str, Any]]:
        words = self._unsettled()
        self.settled += len(words)
        if self.script.no_eot:  # the VAD never hears the silence and word timings never show the gap
            out = [self.results(final=True, words=words)]
            self.last_word_end = None
        elif self.mode == "normal" or self.mode in _WORD_BY_WORD:
            out = [self.results(final=True, words=words, speech_final=True)]
        elif self.mode == "empty_speech_final":
            out = [self.results(final=True, words=words), self.results(final=True, words=[], speech_final=True)]
        else:  # no_speech_final: a noisy room, the VAD never hears the silence; only UtteranceEnd will come
            out = [self.results(final=True, words=words)]
        self.in_utterance, self.silence = False, 0.0
        return self._release() + out

    def flush(self, from_finalize: bool, parts: int = 1) -> list[dict[str, Any]]:
        """The buffered audio as final results (`parts` of them, its words and time split between them); none
        when nothing is buffered."""
        if self.t <= self.final_end + 1e-9:
            return []
        words = self._unsettled()
        self.settled += len(words)
        end, out = self.t, []
        for part in range(parts, 0, -1):
            share = math.ceil(len(words) / part)
            self.t = end - (end - self.final_end) * (part - 1) / part  # each result ends where its words do
            out.append(self.results(final=True, words=words[:share], from_finalize=from_finalize))
            words = words[share:]
        return out


def _model(canonical: str, languages: list[str], *, streaming: bool = True) -> dict[str, Any]:
    """One STT record as Deepgram's /v1/models lists it."""
    return {"name": "general", "canonical_name": canonical, "architecture": canonical.split("-general")[0],
            "languages": languages, "version": "2026-09-03.0", "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, canonical)),
            "batch": True, "streaming": streaming, "formatted_output": True}


async def handle_models(fake: Any, request: web.Request) -> web.StreamResponse:
    """FakeFlux's /v1/models: the models this host serves, as Deepgram lists them: several records per model
    (one per release of its languages), batch-only and other models beside, and a `tts` list."""
    script: Script = fake.script
    if not script.models_endpoint:
        raise web.HTTPNotFound()
    if request.headers.get("Authorization", "") != f"Token {fake.api_key}":
        return _bad(401, "Invalid credentials.", "INVALID_AUTH")
    stt = [_model(name, languages) for name, languages in FLUX_LANGUAGES.items()]
    if script.nova_served:
        nova = sorted(LANGUAGES | set(script.extra_nova_languages))
        english = [code for code in nova if code.startswith("en")]
        stt += [_model("nova-3", english), _model("nova-3-general", [c for c in nova if c not in english]),
                _model("nova-3-medical", ["en", "en-US"]), _model("nova-3", ["hy"], streaming=False)]
    stt.append(_model("nova-2-general", ["en", "th", "zh-HK"]))
    return web.json_response({"stt": stt, "tts": [_model("aura-2-thalia-en", ["en"], streaming=True)]})
    def flush(self, from_finalize: bool) -> list[dict[str, Any]]:
        """The buffered audio as a final result (after a segment swapped_finals still holds); none when nothing
        is buffered."""
        held = self._release()
        if self.t <= self.final_end + 1e-9:
            return held
        words = self._unsettled()
        self.settled += len(words)
        return [*held, self.results(final=True, words=words, from_finalize=from_finalize)]


async def handle_nova(fake: Any, request: web.Request) -> web.StreamResponse:
    """FakeFlux's /v1/listen handler: the same key, faults and stream records as /v2/listen."""
    script: Script = fake.script
    if not script.nova_served:
        raise web.HTTPNotFound()  # a self-hosted Flux-only deployment has no /v1/listen route
    fake.handshakes += 1
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
                await self.close(1011, CLOSE_REASONS["NET-0001"])
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
            await self.close(1008, CLOSE_REASONS["DATA-0000"])  # linear16 cannot have half a sample
            return False
        if not self.record.audio_bytes:
            self.log_timing("first_audio")
        self.record.audio_bytes += len(data)
        self.record.frame_sizes.append(len(data))
        seconds = self.record.audio_seconds
        if not await inject_faults(self, seconds, lambda: self.close(1011, CLOSE_REASONS["NET-0000"])):
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
            if not self.script.ignore_force_end:
                for result in self.engine.flush(from_finalize=True, parts=self.script.finalize_results):
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
        for result in self.engine.flush(from_finalize=False):
            await self.send(result)
        if self.script.close_stream_delay:  # a slow flush, unless the client gives up and closes first
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.script.close_stream_delay):
                    await self.ws.receive()
        await self.send({"type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
                         "duration": round(self.engine.t, 3), "channels": 1,
                         "model_info": {"general-nova-3": {"name": "general-nova-3", "arch": "nova-3"}}})
        await self.close(1000, "")
