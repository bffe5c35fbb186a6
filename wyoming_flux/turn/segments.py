"""Nova-3's settled text: its is_final segments in audio order, each heard once, joined as they come.

Deepgram sends each stretch of audio's final text once, in order; a peer (or a retried stream) that repeats a
segment, or sends one out of order, must not make "turn on turn on the kitchen light" or "the kitchen light turn
on". Segments are kept ordered by where they start, and one that overlaps, in time, a segment already kept is a
repeat and is dropped. The joined text is kept as it grows (appending is the usual case), never re-joined per
message, and stops growing past `limit` characters: the work per message is bounded, whatever the peer sends.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

OVERLAP_SLACK = 0.05  # seconds two segments may share (rounding, word-boundary jitter) and still both be kept


@dataclass(frozen=True)
class Segment:
    start: float  # audio seconds: its first word's start (or the result's, without word timings)
    end: float
    text: str


class SettledText:
    """The settled segments of one command and their text, joined in audio order."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._starts: list[float] = []  # the segments' starts, for bisect
        self._segments: list[Segment] = []
        self.text = ""

    @property
    def full(self) -> bool:
        """Past the limit: nothing more is kept (the caller cuts the text at the limit)."""
        return len(self.text) > self._limit

    def add(self, text: str, start: float, end: float) -> bool:
        """Keep one is_final segment's text; False if it is a repeat, overlaps one kept, or the text is full."""
        if not text or self.full:
            return False
        segment = Segment(start, max(start, end), text[: self._limit + 1])  # more than that is cut anyway
        at = bisect_right(self._starts, start)
        if self._clashes(at - 1, segment) or self._clashes(at, segment):
            return False
        self._starts.insert(at, start)
        self._segments.insert(at, segment)
        if at == len(self._segments) - 1:
            self.text = f"{self.text} {segment.text}" if self.text else segment.text
        else:  # out of order: re-joined, at most `limit` characters since the text is not full
            self.text = " ".join(kept.text for kept in self._segments)
        return True

    def _clashes(self, index: int, segment: Segment) -> bool:
        """The kept segment at `index` (if any) overlaps `segment` in time, or is the same one again. Kept
        segments do not overlap, so only the neighbours of where it would go can."""
        if not 0 <= index < len(self._segments):
            return False
        kept = self._segments[index]
        if kept.start == segment.start and kept.text == segment.text:
            return True  # a repeat, also without word timings (zero-length spans)
        return min(kept.end, segment.end) - max(kept.start, segment.start) > OVERLAP_SLACK
