"""The server's fallback: any Wyoming speech-to-text server (e.g. a local wyoming-faster-whisper) hears the
buffered command again as Transcribe, AudioStart, the chunks, AudioStop; its Transcript is the answer."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import async_read_event, async_write_event
from wyoming.info import Describe, Info

from ..turn.fallback import AudioBuffer, FallbackError
from .uri import tcp_address

_CONNECT_TIMEOUT = 3.0
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
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            await async_write_event(Describe().event(), writer)
            while (event := await async_read_event(reader)) is not None:
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
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return f"it does not speak Wyoming ({type(err).__name__})"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class WyomingFallback:
    """One short connection per command; every wait is bounded by the caller (fallback.answer)."""

    def __init__(self, uri: str, timeout: float) -> None:
        check_fallback_uri(uri)
        self.uri = uri
        self.timeout = timeout

    async def replay(self, buffer: AudioBuffer, language: str | None) -> tuple[str, str | None]:
        """Upload the command as it comes while reading: the first Transcript (or Error) is the answer, even
        before AudioStop, as Home Assistant's own Wyoming client does."""
        client = AsyncClient.from_uri(self.uri, connect_timeout=_CONNECT_TIMEOUT)
        try:
            await client.connect()
        except OSError as err:
            raise FallbackError(f"cannot reach the fallback at {self.uri}: {err.strerror or err}") from None
        uploading = asyncio.create_task(_upload(client, buffer, language))
        reading = asyncio.create_task(_read(client, language))
        try:
            await asyncio.wait([uploading, reading], return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                uploading.result()  # the upload's failure, if it failed
            return await reading
        except (ConnectionError, OSError) as err:
            raise FallbackError(f"the fallback connection broke: {err}") from None
        except ValueError as err:  # not Wyoming: unparsable event
            raise FallbackError(f"the fallback at {self.uri} does not speak Wyoming ({type(err).__name__})") from None
        finally:
            for task in (uploading, reading):
                task.cancel()
            await asyncio.gather(uploading, reading, return_exceptions=True)
            with contextlib.suppress(OSError):
                await client.disconnect()


async def _upload(client: AsyncClient, buffer: AudioBuffer, language: str | None) -> None:
    await client.write_event(Transcribe(language=language, context={CONTEXT_KEY: FROM_FALLBACK}).event())
    started = False
    async for chunk in buffer.stream():
        if not started:
            started = True
            await client.write_event(AudioStart(rate=chunk.rate, width=chunk.width, channels=chunk.channels).event())
        await client.write_event(AudioChunk(rate=chunk.rate, width=chunk.width, channels=chunk.channels,
                                            audio=chunk.audio).event())
    if not started:
        raise FallbackError("no audio to replay")
    await client.write_event(AudioStop().event())


async def _read(client: AsyncClient, language: str | None) -> tuple[str, str | None]:
    while (event := await client.read_event()) is not None:
        if Transcript.is_type(event.type):
            transcript = Transcript.from_event(event)
            return transcript.text or "", transcript.language or language
        if Error.is_type(event.type):
            error = Error.from_event(event)
            raise FallbackError(f"the fallback answered an error: {error.code or '-'}: {error.text}")
    raise FallbackError("the fallback closed the connection without a transcript")
