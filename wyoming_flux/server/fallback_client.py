"""The server's fallback: any Wyoming speech-to-text server (e.g. a local wyoming-faster-whisper) hears the
buffered command again as Transcribe, AudioStart, the chunks, AudioStop; its Transcript is the answer."""

from __future__ import annotations

import asyncio
import contextlib

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error

from ..turn.fallback import AudioBuffer, FallbackError
from .uri import tcp_address

_CONNECT_TIMEOUT = 3.0


def check_fallback_uri(uri: str) -> None:
    """ValueError with one line for a fallback address the server cannot use."""
    if not uri.startswith("tcp://"):
        raise ValueError(f"--fallback-uri must be tcp://HOST:PORT, not {uri}")
    tcp_address(uri)


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
    await client.write_event(Transcribe(language=language).event())
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
