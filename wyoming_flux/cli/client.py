"""Client commands: `check` (a Describe round trip, for health checks) and `transcribe` (stream a WAV file)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import sys
from dataclasses import dataclass, field

from wyoming.asr import Transcribe, Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import AsrModel, Describe, Info

from ..common.bounds import Number
from ..deepgram.models import DEEPGRAM_MODELS, choose_model
from ..server.uri import check_uri
from .config import Parser
from .wav import Recording, WavError, read_wav, speech_end

__all__ = ["Recording", "check", "read_wav", "speech_end", "transcribe"]

DEFAULT_URI = "tcp://127.0.0.1:10300"
DESCRIBE_TIMEOUT = 10.0  # transcribe's Describe: a server that answers nothing is said, not waited on forever
ANSWER_TIMEOUT = 30.0  # after the audio


class NotAnswering(Exception):
    """The server could not be reached or spoke no Wyoming: the line to print after the command's name."""


def os_reason(err: OSError) -> str:
    """An OSError in words, as `check` and `transcribe` say it: "connection refused", not asyncio's
    "[Errno 111] Connect call failed ('127.0.0.1', 9)" (nor its "Multiple exceptions: ..." for several
    addresses)."""
    if isinstance(err, socket.gaierror):
        return f"cannot resolve its host ({err.strerror})"
    number = err.errno
    if number is None and (found := re.search(r"\[Errno (\d+)\]", str(err))):
        number = int(found.group(1))
    if number:
        reason = os.strerror(number)
        return reason[:1].lower() + reason[1:]
    return str(err) or type(err).__name__


async def _describe(client: AsyncClient) -> Info | Error:
    """The server's Info, or the Error it refuses us with (e.g. client-not-allowed, server-full)."""
    await client.write_event(Describe().event())
    while (event := await client.read_event()) is not None:
        if Info.is_type(event.type):
            return Info.from_event(event)
        if Error.is_type(event.type):
            return Error.from_event(event)
    raise ConnectionError("connection closed before Info")


async def _hello(uri: str, timeout: float) -> tuple[AsyncClient, Info | Error]:
    """A connection to the server and its answer to Describe, within `timeout`; NotAnswering in words."""
    client = AsyncClient.from_uri(uri)
    try:
        async with asyncio.timeout(timeout):
            await client.connect()
            return client, await _describe(client)
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as err:
        reason = os_reason(err)
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # bytes that are not Wyoming events
        reason = f"it does not speak Wyoming ({type(err).__name__}: {err})"
    await _close(client)
    raise NotAnswering(f"{uri} is not answering: {reason}")


async def _close(client: AsyncClient) -> None:
    with contextlib.suppress(OSError):  # a connection the server reset: closed all the same
        await client.disconnect()


async def check(uri: str, timeout: float) -> int:
    """Exit 0 if a Wyoming STT server answers Describe within `timeout`, else 1 with one line on stderr."""
    try:
        client, answer = await _hello(uri, timeout)
    except NotAnswering as err:
        print(f"wyoming-flux check: {err}", file=sys.stderr)
        return 1
    await _close(client)
    if isinstance(answer, Error):
        print(f"wyoming-flux check: {uri} refused: error ({answer.code}): {answer.text}", file=sys.stderr)
        return 1
    if not answer.asr:
        print(f"wyoming-flux check: {uri} answers but offers no speech-to-text", file=sys.stderr)
        return 1
    asr = answer.asr[0]
    print(f"ok: {asr.name} {asr.version or ''} at {uri} ({', '.join(m.name for m in asr.models)})")
    return 0


def answering_model(offered: list[AsrModel], name: str | None, language: str | None) -> str | None:
    """The model a server will use for a command, by the rule our server follows (`choose_model`); a server
    of another kind: the named model, else its first. None when no offered model speaks the language (the
    server then refuses the command itself)."""
    if offered and all(model.name in DEEPGRAM_MODELS for model in offered):
        chosen = choose_model([DEEPGRAM_MODELS[model.name] for model in offered], name, language)
        return None if chosen is None else chosen.name
    return name or (offered[0].name if offered else None)


@dataclass
class _Stream:
    """What one streamed command measured (loop times) and how much audio it sent."""

    marks: dict[str, float] = field(default_factory=dict)
    sent: int = 0


async def transcribe(path: str, uri: str, *, fast: bool, language: str | None, model: str | None) -> int:
    recording = read_wav(path)
    if recording.warning:
        print(f"wyoming-flux transcribe: warning: {recording.warning}", file=sys.stderr)
    try:
        client, info = await _hello(uri, DESCRIBE_TIMEOUT)
    except NotAnswering as err:
        print(f"wyoming-flux transcribe: {err}", file=sys.stderr)
        return 1
    try:
        if isinstance(info, Error):  # e.g. client-not-allowed, server-full
            print(f"wyoming-flux transcribe: error ({info.code}): {info.text}", file=sys.stderr)
            return 1
        offered = [m for asr in info.asr for m in asr.models]
        if model is not None and model not in {m.name for m in offered}:
            print(f"wyoming-flux transcribe: error: --model {model}: {uri} offers "
                  f"{', '.join(m.name for m in offered) or 'no model'}", file=sys.stderr)
            return 2
        stream = _Stream()
        result = await _stream(client, recording, stream, fast=fast, language=language, model=model)
    finally:
        await _close(client)
    if sys.stdout.isatty():
        print("\r\033[K", end="")
    if isinstance(result, Error):
        print(f"wyoming-flux transcribe: error ({result.code}): {result.text}", file=sys.stderr)
        return 1
    if result.text:
        print(result.text)
    _report(recording, stream, answering_model(offered, model, language), fast=fast)
    if not result.text:  # an empty transcript: say so, and let scripts tell it from text
        print("wyoming-flux transcribe: no speech recognized", file=sys.stderr)
        return 1
    return 0


async def _stream(client: AsyncClient, recording: Recording, stream: _Stream, *, fast: bool, language: str | None,
                  model: str | None) -> Transcript | Error:
    """Send the recording (in real time unless `fast`), showing the partial text live; the answer."""
    live = sys.stdout.isatty()
    bytes_per_second = recording.rate * recording.width * recording.channels
    chunk = max(1, recording.rate // 100) * recording.width * recording.channels  # 10 ms, as Home Assistant sends
    loop = asyncio.get_running_loop()
    marks = stream.marks
    partial = ""

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
    try:
        try:
            while stream.sent < len(recording.pcm) and not answer.done():
                piece = recording.pcm[stream.sent : stream.sent + chunk]
                await client.write_event(AudioChunk(rate=recording.rate, width=recording.width, channels=recording.channels, audio=piece).event())
                stream.sent += len(piece)
                if "speech_end" not in marks and stream.sent / bytes_per_second >= recording.speech_end:
                    marks["speech_end"] = loop.time()
                if not fast:
                    await asyncio.sleep(max(0.0, marks["start"] + stream.sent / bytes_per_second - loop.time()))
            await client.write_event(AudioStop().event())
        except ConnectionError:
            # The server refused us and closed (client-not-allowed, server-full): its Error says why.
            if (refusal := await _error_read(answer)) is None:
                raise
            return refusal
        return await asyncio.wait_for(answer, ANSWER_TIMEOUT)
    finally:
        answer.cancel()  # on any failure: its own error must not be printed as a stray traceback
        await asyncio.gather(answer, return_exceptions=True)


def _report(recording: Recording, stream: _Stream, model: str | None, *, fast: bool) -> None:
    """The two lines of figures on stderr. An end-of-speech timing only where it means something: the audio
    went in real time (with --fast the speech's end was sent long before it would be spoken) and the file
    has a loud stretch to end."""
    bytes_per_second = recording.rate * recording.width * recording.channels
    marks = stream.marks
    speech = f"speech ends at {recording.speech_end:.2f} s" if recording.speech_end > 0 else "no speech found"
    print(f"audio {len(recording.pcm) / bytes_per_second:.2f} s ({speech}), sent "
          f"{stream.sent / bytes_per_second:.2f} s" + (f" to {model}" if model else ""), file=sys.stderr)
    first = marks.get("first_partial")
    timings = [f"time to first partial: {'-' if first is None else _ms(first - marks['start'])}"]
    if fast:
        timings.append(f"transcript after {_ms(marks['transcript'] - marks['start'])} "
                       "(--fast: sent faster than real time, so no end-of-speech timing)")
    elif recording.speech_end > 0 and "speech_end" in marks:
        timings.append(f"end of speech -> transcript: {_ms(marks['transcript'] - marks['speech_end'])}")
    print("; ".join(timings), file=sys.stderr)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


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
    parser.add_argument("--model", help="model to ask for, one the server offers (wyoming-flux check lists them), "
                        "e.g. flux-general-multi; default: the one the server picks for the language")
    args = parser.parse_args(argv)
    if (bad := _bad_uri(args.uri)) is not None:
        print(f"{parser.prog}: error: {bad}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(transcribe(args.wav, args.uri, fast=args.fast, language=args.language, model=args.model))
    except KeyboardInterrupt:
        return 130
    except TimeoutError:
        print(f"wyoming-flux transcribe: no answer from {args.uri} within {ANSWER_TIMEOUT:g} s", file=sys.stderr)
        return 1
    except WavError as err:
        print(f"wyoming-flux transcribe: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the connection failed after Describe
        print(f"wyoming-flux transcribe: {args.uri}: {os_reason(err)}", file=sys.stderr)
        return 1
    except EOFError:
        print(f"wyoming-flux transcribe: {args.uri} closed the connection", file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # bytes that are not Wyoming events
        print(f"wyoming-flux transcribe: {args.uri} does not speak Wyoming ({type(err).__name__}: {err})",
              file=sys.stderr)
        return 1
