"""Resource hygiene for the package's tests: no task and no file descriptor may outlive a test."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def _no_fd_leak() -> Iterator[None]:
    before = _open_fds()
    yield
    deadline = time.monotonic() + 2.0
    while True:  # sockets close asynchronously: give them a moment
        gc.collect()
        if (after := _open_fds()) <= before or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after <= before, f"{after - before} file descriptor(s) leaked"


@pytest.fixture(autouse=True)
async def _no_task_leak() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(100):
        left = asyncio.all_tasks() - before - {asyncio.current_task()}
        if not left:
            break
        await asyncio.sleep(0.02)
    assert not left, f"tasks left behind: {left}"
