"""Keyterms within Deepgram's limit: 500 tokens across all of a stream's keyterms, on Flux and on Nova-3.

Deepgram counts its own tokens and does not say how; over the limit the handshake is refused (HTTP 400 "Keyterm
limit exceeded. The maximum number of tokens across all keyterms is 500"). So the count here errs high: a
long word is several tokens, and in scripts written without spaces (Chinese, Japanese, Thai, ...) a "word" may
be a whole phrase, so every character counts as a token there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

KEYTERM_TOKEN_BUDGET = 500

# Ideographs, kana, Hangul syllables and the scripts of South-East Asia and Tibet: a token per character at
# least (Hangul has spaces, but a syllable is a token or more all the same).
_ONE_TOKEN_EACH = re.compile(
    "[\u0e00-\u0fff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7ff"
    "\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]"
)


def estimate_tokens(term: str) -> int:
    """A conservative token count: at least one per word, one per four characters of a long word, and one per
    character of a script written without spaces."""
    total = 0
    for word in term.split():
        dense = len(_ONE_TOKEN_EACH.findall(word))
        total += dense + (max(1, math.ceil((len(word) - dense) / 4)) if len(word) > dense else 0)
    return total


def refused_for_keyterms(status: int | None, dg_error: str | None) -> bool:
    """Deepgram refused a handshake for its keyterm limit (it says so in words only)."""
    said = (dg_error or "").casefold()
    return status == 400 and "keyterm" in said and ("limit" in said or "token" in said)


class Keyterms:
    """Terms kept as they are added: in order (first ones matter most), without duplicates, within the token
    budget. Once `full` (every term costs a token at least) nothing more fits, so a long list can stop there."""

    def __init__(self, budget: int = KEYTERM_TOKEN_BUDGET) -> None:
        self.budget = budget
        self.kept: list[str] = []
        self.used = 0
        self._seen: set[str] = set()

    @property
    def full(self) -> bool:
        return self.used >= self.budget

    def add(self, raw: str) -> None:
        term = " ".join(raw.split())
        key = term.casefold()
        if not term or key in self._seen:
            return
        cost = estimate_tokens(term)
        if self.used + cost > self.budget:
            return
        self.kept.append(term)
        self._seen.add(key)
        self.used += cost


def trim_keyterms(terms: Iterable[str], budget: int = KEYTERM_TOKEN_BUDGET) -> list[str]:
    """Keep terms in order (first ones matter most), without duplicates, within the token budget."""
    keyterms = Keyterms(budget)
    for term in terms:
        if keyterms.full:
            break
        keyterms.add(term)
    return keyterms.kept
