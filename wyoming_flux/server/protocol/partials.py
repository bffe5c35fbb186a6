"""Streaming partial transcripts to Wyoming clients."""

from __future__ import annotations


class ChunkStream:
    """Turns Flux's revised-in-place transcripts into append-only deltas (Wyoming clients concatenate).

    Only words that are not the last one are sent while the turn goes on (the last word is still changing);
    once Flux revises a word already sent, partials stop, and the final Transcript carries the truth.
    """

    def __init__(self) -> None:
        self.started = False
        self._sent: list[str] = []
        self._diverged = False

    def delta(self, text: str, final: bool = False) -> str:
        words = text.split()
        if self._diverged or words[: len(self._sent)] != self._sent:
            self._diverged = True
            return ""
        stable = words if final else words[:-1]
        new = stable[len(self._sent) :]
        if not new:
            return ""
        chunk = (" " if self._sent else "") + " ".join(new)
        self._sent.extend(new)
        return chunk
