"""Span value type, built-in type names, and deterministic overlap resolution."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable

EMAIL_ADDRESS = "EMAIL_ADDRESS"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
IBAN_CODE = "IBAN_CODE"
IP_ADDRESS = "IP_ADDRESS"
URL_CREDENTIALS = "URL_CREDENTIALS"
SECRET = "SECRET"
PRICE = "PRICE"
COMMERCIAL_TERM = "COMMERCIAL_TERM"

# Internal pseudo-type for input text that already looks like a placeholder;
# it is always escaped, never counted, and not subject to policy.
LITERAL = "_LITERAL"

# Highest priority first. Validated, high-harm types beat fuzzy, low-harm ones;
# sensitive terms rank last because a term inside e.g. an e-mail or a
# commercial clause is still hidden by the winning span.
PRIORITY: tuple[str, ...] = (
    LITERAL,
    SECRET,
    URL_CREDENTIALS,
    CREDIT_CARD,
    IBAN_CODE,
    EMAIL_ADDRESS,
    IP_ADDRESS,
    PHONE_NUMBER,
    COMMERCIAL_TERM,
    PRICE,
)
BUILTIN_TYPES: frozenset[str] = frozenset(PRIORITY[1:])
_RANK = {t: i for i, t in enumerate(PRIORITY)}
_TERM_RANK = len(PRIORITY)  # any custom (TermMatcher) type


@dataclass(frozen=True, slots=True)
class Span:
    """A detected value: text[start:end] (end exclusive). Holds no text itself."""

    start: int
    end: int
    type: str
    score: float = 1.0

    def __len__(self) -> int:
        return self.end - self.start


def rank(type_: str) -> int:
    """Lower rank = higher priority."""
    return _RANK.get(type_, _TERM_RANK)


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep a non-overlapping subset, sorted by start.

    Winner order: higher priority type, then longer span, then earlier start,
    then higher score -- fully deterministic for a given input.
    """
    get = _RANK.get
    ordered = sorted(spans, key=lambda s: (get(s.type, _TERM_RANK), s.start - s.end, s.start, -s.score))
    starts: list[int] = []  # kept spans, disjoint and sorted: starts/ends are both sorted
    ends: list[int] = []
    kept: list[Span] = []
    bisect_right = bisect.bisect_right
    for cand in ordered:
        start, end = cand.start, cand.end
        if end <= start:
            continue
        i = bisect_right(ends, start)  # first kept span ending after cand.start
        if i < len(starts) and starts[i] < end:
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        kept.insert(i, cand)
    return kept
