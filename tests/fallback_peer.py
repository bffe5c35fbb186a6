"""Start the test peer (tests/wyoming_peer.py) as a separate process: a real Wyoming STT server over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.helpers import free_port
from tests.conftest import ROOT


@dataclass
class Peer:
    uri: str
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def wyoming_peer(*args: str) -> AsyncIterator[Peer]:
    uri = f"tcp://127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.wyoming_peer", "--uri", uri, *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):  # a cold Python start on a busy machine
            assert (await process.stdout.readline()).strip() == b"ready", "the test peer did not start"
        yield Peer(uri, process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
