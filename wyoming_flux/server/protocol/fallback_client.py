"""The server's fallback: any Wyoming speech-to-text server (e.g. a local wyoming-faster-whisper) hears the
buffered command again as Transcribe, AudioStart, the chunks, AudioStop; its Transcript is the answer.

What the fallback sends is read with our own bounded parser (wire.py), so a fallback that announces a huge
event gets a clear refusal, not our memory; and its connection is aborted when it cannot close in time (a
fallback that stopped reading leaves unsent audio that would otherwise hold the close forever)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from ...turn.fallback import AudioBuffer, FallbackError
from ..uri import tcp_address
from .wire import BadEvent, EventParser, WireLimits, encode_event

_CONNECT_TIMEOUT = 3.0
CLOSE_TIMEOUT = 0.25  # seconds a closing fallback connection may take to send what is queued; then it is reset
# What we read from a fallback: a Transcript is a few hundred bytes; nothing it sends needs a large payload.
FALLBACK_LIMITS = WireLimits(header_bytes=64 * 1024, data_bytes=1024 * 1024, payload_bytes=1024 * 1024)
_READ_SIZE = 64 * 1024
_PROBE_TIMEOUT = 2.0  # the start-up Describe: a fallback that takes longer is said to be unreachable
# In the Transcribe we send: a wyoming-flux that gets this command must not hand it to its own fallback, so
# two servers that are each other's fallback (or one that is its own) cannot pass a command around forever.
CONTEXT_KEY, FROM_FALLBACK = "wyoming-flux", "fallback"


def check_fallback_uri(uri: str, listen_uri: str | None = None) -> None:
    """ValueError with one line for a fallback address the server cannot use, or that is the server itself."""
    if not uri.startswith("tcp://"):
        raise ValueError(f"--fallback-uri must be tcp://HOST:PORT, not {uri}")
    host, port = tcp_address(uri)
    if listen_uri is not None and listen_uri.startswith("tcp://") and _same_server(host, port, listen_uri):
        raise ValueError(f"--fallback-uri {uri} is this server (--uri {listen_uri}): name another Wyoming "
                         "speech-to-text server")


def _same_server(host: str, port: int, listen_uri: str) -> bool:
    listen_host, listen_port = tcp_address(listen_uri)
    if port != listen_port:
        return False
    local = {"localhost", socket.gethostname().lower()}
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        reaches_us = host.lower() in local
    else:
        reaches_us = address.is_loopback or address.is_unspecified
    return host == listen_host or (reaches_us and (listen_host in ("0.0.0.0", "::") or _loopback(listen_host)))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def from_fallback(data: dict[str, Any]) -> bool:
    """The Transcribe of a command another wyoming-flux sends as its fallback."""
    context = data.get("context")
    return isinstance(context, dict) and context.get(CONTEXT_KEY) == FROM_FALLBACK


class FallbackLoopError(Exception):
    """The fallback address leads back to this server: one line for the user."""


async def probe(uri: str, is_self: Callable[[tuple[Any, ...]], bool]) -> str | None:
    """Describe the fallback once at start: None if it answers with speech-to-text, else why not (for one
    warning). FallbackLoopError if the connection arrives at this very server (`is_self` of our local address)."""
    host, port = tcp_address(uri)
    writer: asyncio.StreamWriter | None = None
    answered = False
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            await _write(writer, Describe().event())
            async for event in _events(reader):
                answered = True
                if is_self(writer.get_extra_info("sockname")):  # whatever we answered ourselves
                    raise FallbackLoopError(f"--fallback-uri {uri} is this server: name another Wyoming "
                                            "speech-to-text server")
                if Info.is_type(event.type):
                    return None if Info.from_event(event).asr else "it offers no speech-to-text"
                if Error.is_type(event.type):
                    error = Error.from_event(event)
                    return f"it refused us: {error.code}: {error.text}"
            return "it closed the connection without answering Describe"
    except TimeoutError:
        return f"no answer to Describe within {_PROBE_TIMEOUT:g} s"
    except OSError as err:
        return err.strerror or str(err) or type(err).__name__
    except BadEvent as err:
        return f"it sent what we refuse: {err}"
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return f"it does not speak Wyoming ({type(err).__name__})"
    finally:
        if writer is None:
            pass
        elif answered:
            await close(writer)
        else:  # a fallback that is stopped would hold a graceful close (and our half of it) for minutes
            reset(writer.transport)


class WyomingFallback:
    """One short connection per command; every wait is bounded by the caller (fallback.answer), and closing
    is bounded here."""

    def __init__(self, uri: str, timeout: float) -> None:
        check_fallback_uri(uri)
        self.uri = uri
        self.timeout = timeout

    async def replay(self, buffer: AudioBuffer, language: str | None) -> tuple[str, str | None]:
        """Upload the command as it comes while reading: the first Transcript (or Error) is the answer, even
        before AudioStop, as Home Assistant's own Wyoming client does."""
        host, port = tcp_address(self.uri)
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise FallbackError(f"cannot reach the fallback at {self.uri}: no answer within "
                                f"{_CONNECT_TIMEOUT:g} s") from None
        except OSError as err:
            raise FallbackError(f"cannot reach the fallback at {self.uri}: {err.strerror or err}") from None
        uploading = asyncio.create_task(_upload(writer, buffer, language))
        reading = asyncio.create_task(_read(reader, language))
        answered = False
        try:
            await asyncio.wait([uploading, reading], return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                uploading.result()  # the upload's failure, if it failed
            result = await reading
            answered = True
            return result
        except (ConnectionError, OSError) as err:
            raise FallbackError(f"the fallback connection broke: {err}") from None
        except BadEvent as err:  # over our bounds, or not Wyoming at all
            raise FallbackError(f"the fallback at {self.uri} sent what we refuse: {err}") from None
        except ValueError as err:  # an event of the right type with unusable fields
            raise FallbackError(f"the fallback at {self.uri} does not speak Wyoming ({type(err).__name__})") from None
        finally:
            for task in (uploading, reading):
                task.cancel()
            try:
                await asyncio.gather(uploading, reading, return_exceptions=True)
            finally:  # even when cancelled here: the socket never outlives the replay
                if answered:
                    await close(writer)
                else:  # failed, or past the bound: the fallback may not be reading, and we need nothing more
                    reset(writer.transport)


async def close(writer: asyncio.StreamWriter) -> None:
    """Close, letting queued bytes go out for up to CLOSE_TIMEOUT; a peer that does not read is aborted."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        pass
    finally:
        if not writer.transport.is_closing() or writer.transport.get_write_buffer_size():
            reset(writer.transport)


def reset(transport: asyncio.WriteTransport) -> None:
    """Drop a connection at once with a reset: a plain close of a socket with unsent bytes would leave the
    kernel trying to deliver them to a peer that does not read, for minutes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _write(writer: asyncio.StreamWriter, event: Event) -> None:
    writer.write(encode_event(event))
    await writer.drain()


async def _upload(writer: asyncio.StreamWriter, buffer: AudioBuffer, language: str | None) -> None:
    await _write(writer, Transcribe(language=language, context={CONTEXT_KEY: FROM_FALLBACK}).event())
    started = False
    async for chunk in buffer.stream():
        if not started:
            started = True
            await _write(writer, AudioStart(rate=chunk.rate, width=chunk.width, channels=chunk.channels).event())
        await _write(writer, AudioChunk(rate=chunk.rate, width=chunk.width, channels=chunk.channels,
                                        audio=chunk.audio).event())
    if not started:
        raise FallbackError("no audio to replay")
    await _write(writer, AudioStop().event())


async def _events(reader: asyncio.StreamReader) -> AsyncIterator[Event]:
    """The fallback's events, read within FALLBACK_LIMITS (BadEvent past them), until it closes."""
    parser = EventParser(FALLBACK_LIMITS)
    while data := await reader.read(_READ_SIZE):
        parser.feed(data)
        while (event := parser.next()) is not None:
            yield event


async def _read(reader: asyncio.StreamReader, language: str | None) -> tuple[str, str | None]:
    async for event in _events(reader):
        if Transcript.is_type(event.type):
            transcript = Transcript.from_event(event)
            return transcript.text or "", transcript.language or language
        if Error.is_type(event.type):
            error = Error.from_event(event)
            raise FallbackError(f"the fallback answered an error: {error.code or '-'}: {error.text}")
    raise FallbackError("the fallback closed the connection without a transcript")

