"""Background tasks as this package keeps them: referenced until done, and cancelled then awaited to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


def keep(coro: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]], name: str | None = None) -> asyncio.Task[None]:
    """Run `coro` in the background, held in `tasks` (so it is not collected, and can be awaited) until done."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
