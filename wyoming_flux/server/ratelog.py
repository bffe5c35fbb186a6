"""Log lines a client can cause, at most one per kind a minute, then a summary of how many were held back."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._windows: dict[str, tuple[float, int]] = {}  # kind -> (window start, lines held back)

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        start, held = self._windows.get(kind, (-self._interval, 0))
        if now - start < self._interval:
            self._windows[kind] = (start, held + 1)
            return
        self._flush(kind, held)
        self._windows[kind] = (now, 0)
        self._logger.warning(message, *args)

    def flush(self, force: bool = False) -> None:
        """Say what was held back (on a timer, and with force at shutdown), so a summary is never lost."""
        now = time.monotonic()
        for kind, (start, held) in list(self._windows.items()):
            if held and (force or now - start >= self._interval):
                self._flush(kind, held)
                self._windows[kind] = (start, 0)

    def _flush(self, kind: str, held: int) -> None:
        if held:
            # kinds are plural nouns ("refused connections"): one held back is singular
            self._logger.warning("%d more %s in the last minute", held, kind if held > 1 else kind.removesuffix("s"))
