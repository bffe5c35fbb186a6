"""Client commands: `check` (a Describe round trip, for health checks) and `transcribe` (stream a WAV file)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info

from ..common.bounds import Number
from ..server.uri import check_uri
from .config import Parser
from .wav import Recording, WavError, read_wav, speech_end

__all__ = ["Recording", "check", "read_wav", "speech_end", "transcribe"]

DEFAULT_URI = "tcp://127.0.0.1:10300"


async def check(uri: str, timeout: float) -> int:
    """Exit 0 if a Wyoming STT server answers Describe within `timeout`, else 1 with one line on stderr."""
    try:
        async with asyncio.timeout(timeout):
            async with AsyncClient.from_uri(uri) as client:
                await client.write_event(Describe().event())
                while (event := await client.read_event()) is not None:
                    if Info.is_type(event.type):
                        info = Info.from_event(event)
                        break
                    if Error.is_type(event.type):  # e.g. client-not-allowed, server-full
                        error = Error.from_event(event)
                        print(f"wyoming-flux check: {uri} refused: error ({error.code}): {error.text}",
                              file=sys.stderr)
                        return 1
                else:
                    raise ConnectionError("connection closed before Info")
    except TimeoutError:
        print(f"wyoming-flux check: {uri} is not answering: no answer within {timeout:g} s", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        print(f"wyoming-flux check: {uri} is not answering: {err or type(err).__name__}", file=sys.stderr)
        return 1
    if not info.asr:
        print(f"wyoming-flux check: {uri} answers but offers no speech-to-text", file=sys.stderr)
        return 1
    asr = info.asr[0]
    print(f"ok: {asr.name} {asr.version or ''} at {uri} ({', '.join(m.name for m in asr.models)})")
    return 0


async def transcribe(path: str, uri: str, *, fast: bool, language: str | None, model: str | None) -> int:
    recording = read_wav(path)
    live = sys.stdout.isatty()
    bytes_per_second = recording.rate * recording.width * recording.channels
    chunk = max(1, recording.rate // 100) * recording.width * recording.channels  # 10 ms, as Home Assistant sends
    loop = asyncio.get_running_loop()
    marks: dict[str, float] = {}
    partial = ""
    async with AsyncClient.from_uri(uri) as client:
        async def read_answer() -> Transcript | Error:
            nonlocal partial
            while (event := await client.read_event()) is not None:
                if TranscriptChunk.is_type(event.type):
                    marks.setdefault("first_partial", loop.time())
                    partial += TranscriptChunk.from_event(event).text
                    if live:
                        print(f"\r\033[K… {partial}", end="", flush=True)
                elif Transcript.is_type(event.type):
                    marks["transcript"] = loop.time()
                    return Transcript.from_event(event)
                elif Error.is_type(event.type):
                    return Error.from_event(event)
            raise ConnectionError("the server closed the connection without an answer")

        await client.write_event(Transcribe(name=model, language=language).event())
        await client.write_event(AudioStart(rate=recording.rate, width=recording.width, channels=recording.channels).event())
        marks["start"] = loop.time()
        answer = asyncio.create_task(read_answer())
        sent = 0
        try:
            try:
                while sent < len(recording.pcm) and not answer.done():
                    piece = recording.pcm[sent : sent + chunk]
                    await client.write_event(AudioChunk(rate=recording.rate, width=recording.width, channels=recording.channels, audio=piece).event())
                    sent += len(piece)
                    if "speech_end" not in marks and sent / bytes_per_second >= recording.speech_end:
                        marks["speech_end"] = loop.time()
                    if not fast:
                        await asyncio.sleep(max(0.0, marks["start"] + sent / bytes_per_second - loop.time()))
                await client.write_event(AudioStop().event())
            except ConnectionError:
                # The server refused us and closed (client-not-allowed, server-full): its Error says why.
                if (refusal := await _error_read(answer)) is None:
                    raise
                result: Transcript | Error = refusal
            else:
                result = await asyncio.wait_for(answer, 30)
        finally:
            answer.cancel()  # on any failure: its own error must not be printed as a stray traceback
            await asyncio.gather(answer, return_exceptions=True)
    if live:
        print("\r\033[K", end="")
    if isinstance(result, Error):
        print(f"wyoming-flux transcribe: error ({result.code}): {result.text}", file=sys.stderr)
        return 1
    first = marks.get("first_partial")
    first_text = "-" if first is None else f"{(first - marks['start']) * 1000:.0f} ms"
    # A file with no loud stretch has no end of speech to measure from.
    speech = recording.speech_end > 0 and "speech_end" in marks
    closing = f"{(marks['transcript'] - marks['speech_end']) * 1000:.0f} ms" if speech else "-"
    if result.text:
        print(result.text)
    print(f"audio {len(recording.pcm) / bytes_per_second:.2f} s (speech ends at "
          f"{f'{recording.speech_end:.2f} s' if recording.speech_end > 0 else '- : no speech found'}), "
          f"sent {sent / bytes_per_second:.2f} s", file=sys.stderr)
    print(f"time to first partial: {first_text}; end of speech -> transcript: {closing}", file=sys.stderr)
    if not result.text:  # an empty transcript: say so, and let scripts tell it from text
        print("wyoming-flux transcribe: no speech recognized", file=sys.stderr)
        return 1
    return 0


async def _error_read(answer: asyncio.Task[Transcript | Error]) -> Error | None:
    """The Error the server sent before closing, if the answer reader got one (bounded: it was already sent)."""
    try:
        result = await asyncio.wait_for(asyncio.shield(answer), 1.0)
    except (ConnectionError, OSError, TimeoutError, ValueError):
        return None
    return result if isinstance(result, Error) else None


def _bad_uri(uri: str) -> str | None:
    """Why the server at `uri` cannot be reached by these commands, or None: the server's own URI rule."""
    try:
        check_uri(uri)
    except ValueError as err:
        return f"--uri {err}"
    return None


CHECK_MODES = """modes:
  wyoming-flux check [--uri URI]              a Wyoming server answers Describe (health checks)
  wyoming-flux check --flux [options]         Flux accepts the API key, model and endpoint (see check --flux --help)
  wyoming-flux check --hass-url URL [options] the server can read names from Home Assistant (see check --hass-url URL --help)"""


def main(command: str, argv: list[str]) -> int:
    parser = Parser(prog=f"wyoming-flux {command}", formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog=CHECK_MODES if command == "check" else None)
    parser.add_argument("--uri", default=DEFAULT_URI, help=f"the Wyoming server (default {DEFAULT_URI})")
    if command == "check":
        parser.add_argument("--timeout", type=Number(float, 0.1, 300), default=5.0,
                            help="seconds to wait for the answer (0.1-300)")
        parser.add_argument("--flux", action="store_true", help="check Flux itself instead (its own options: "
                            "wyoming-flux check --flux --help)")
        parser.add_argument("--hass-url", metavar="URL", help="check Home Assistant's names instead (its own "
                            "options: wyoming-flux check --hass-url URL --help)")
        args = parser.parse_args(argv)
        if (bad := _bad_uri(args.uri)) is not None:
            print(f"{parser.prog}: error: {bad}", file=sys.stderr)
            return 2
        try:
            return asyncio.run(check(args.uri, args.timeout))
        except KeyboardInterrupt:
            return 130
    parser.add_argument("wav", help="a WAV file: integer PCM, 8- to 32-bit, 4-384 kHz, 1-32 channels")
    parser.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    parser.add_argument("--language", help="language code to ask for, e.g. en-US or de")
    parser.add_argument("--model", help="model name to ask for, e.g. flux-general-multi")
    args = parser.parse_args(argv)
    if (bad := _bad_uri(args.uri)) is not None:
        print(f"{parser.prog}: error: {bad}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(transcribe(args.wav, args.uri, fast=args.fast, language=args.language, model=args.model))
    except KeyboardInterrupt:
        return 130
    except TimeoutError:
        print(f"wyoming-flux transcribe: no answer from {args.uri} within 30 s", file=sys.stderr)
        return 1
    except (OSError, WavError, EOFError) as err:
        print(f"wyoming-flux transcribe: {err or type(err).__name__}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # bytes that are not Wyoming events
        print(f"wyoming-flux transcribe: {args.uri} does not speak Wyoming ({type(err).__name__}: {err})",
              file=sys.stderr)
        return 1
