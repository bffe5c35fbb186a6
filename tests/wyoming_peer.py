"""A separate Wyoming speech-to-text server process, the fallback in tests.

Run as `python -m tests.wyoming_peer --uri tcp://127.0.0.1:PORT`. It recognises the fixtures: the audio it
receives must start with a fixture's PCM exactly (as a replay must deliver it), and its answer is that fixture's
text; any other audio is answered "unrecognised audio (N bytes)". So a transcript proves the whole command,
from its first chunk, arrived intact and in order. `--delay` makes it slow; `--error` makes it answer an Error;
`--huge-payload` makes it hostile: it announces a 4 GiB payload and streams 256 MiB of it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from functools import partial
from pathlib import Path

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler, AsyncServer

FIXTURES = Path(__file__).parent / "fixtures"
_ATTRIBUTION = Attribution(name="tests", url="")
_ENDPOINT_BYTES = 16000  # 0.5 s of 16 kHz 16-bit silence after the speech ends the command


def _fixtures() -> dict[str, bytes]:
    import wave

    out = {}
    for wav_path in sorted(FIXTURES.glob("*.wav")):
        with wave.open(str(wav_path), "rb") as wav:
            out[wav_path.with_suffix(".txt").read_text().strip()] = wav.readframes(wav.getnframes())
    return out


class PeerHandler(AsyncEventHandler):
    def __init__(self, known: dict[str, bytes], delay: float, error: bool, endpointing: bool, huge: bool,
                 *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.known, self.delay, self.error, self.endpointing = known, delay, error, endpointing
        self.huge = huge
        self.answered = False
        self.audio = bytearray()
        self.language: str | None = None

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(Info(asr=[AsrProgram(
                name="test-peer", attribution=_ATTRIBUTION, installed=True, description="fixture recogniser",
                version="1", models=[AsrModel(name="fixtures", attribution=_ATTRIBUTION, installed=True,
                                              description="fixtures", version="1", languages=["en"])])]).event())
        elif Transcribe.is_type(event.type):
            self.language = Transcribe.from_event(event).language
            if self.huge:
                await self._huge_payload()
                return False
        elif AudioStart.is_type(event.type):
            self.audio.clear()
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            if (chunk.rate, chunk.width, chunk.channels) != (16000, 2, 1):
                await self.write_event(Error(text="only 16 kHz 16-bit mono", code="format").event())
                return False
            self.audio += chunk.audio
            if self.endpointing and not self.answered and (text := self._heard(_ENDPOINT_BYTES)):
                # like wyoming-faster-whisper --vad-endpointing: answer once, then drop audio until audio-stop
                self.answered = True
                await self.write_event(Transcript(text=text, language=self.language).event())
        elif AudioStop.is_type(event.type):
            if self.answered:
                return False
            await asyncio.sleep(self.delay)
            if self.error:
                await self.write_event(Error(text="the test peer fails on purpose", code="peer-error").event())
                return False
            text = self._heard(0) or f"unrecognised audio ({len(self.audio)} bytes)"
            await self.write_event(Transcript(text=text, language=self.language).event())
            return False
        return True

    async def _huge_payload(self) -> None:
        self.writer.write(b'{"type": "transcript", "data": {"text": "x"}, "payload_length": 4294967296}\n')
        zeros = bytes(1024 * 1024)
        for _ in range(256):  # 256 MiB, enough to show: a reader without bounds holds it all
            self.writer.write(zeros)
            await self.writer.drain()

    def _heard(self, after: int) -> str | None:
        """The fixture the audio starts with, once `after` more bytes (trailing silence) followed it."""
        return next((text for text, pcm in self.known.items()
                     if len(self.audio) >= len(pcm) + after and self.audio.startswith(pcm)), None)


async def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--error", action="store_true")
    parser.add_argument("--huge-payload", action="store_true", help="announce a 4 GiB payload and stream it")
    parser.add_argument("--endpointing", action="store_true", help="answer 0.5 s after the speech, before audio-stop")
    args = parser.parse_args(argv)
    server = AsyncServer.from_uri(args.uri)
    known = _fixtures()
    handler = partial(PeerHandler, known, args.delay, args.error, args.endpointing, args.huge_payload)
    await server.start(handler)  # type: ignore[attr-defined]
    print("ready", flush=True)  # the port is bound: the test may connect
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
