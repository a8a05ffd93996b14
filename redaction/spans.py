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


# Detectors build (start, end, type, score) tuples: a frozen dataclass is costly to
# construct, and redact() never needs Span objects at all.
Cand = tuple[int, int, str, float]


def as_spans(cands: Iterable[Cand]) -> list[Span]:
    return [Span(*c) for c in cands]


def resolve_cands(cands: Iterable[Cand]) -> list[Cand]:
    """Keep a non-overlapping subset, sorted by start.

    Winner order: higher priority type, then longer span, then earlier start,
    then higher score -- fully deterministic for a given input.
    """
    # Only candidates that overlap compete, so the greedy choice by priority is
    # made per cluster of overlapping candidates (usually a single one, which
    # simply wins): the same result as running it over all of them at once.
    kept: list[Cand] = []
    cluster: list[Cand] = []
    hi = -1  # end of the current cluster
    for cand in sorted(cands):
        if cand[1] <= cand[0]:
            continue  # empty: never kept
        if cand[0] < hi:
            cluster.append(cand)
            if cand[1] > hi:
                hi = cand[1]
            continue
        if len(cluster) == 1:
            kept.append(cluster[0])
        elif cluster:
            kept += _greedy(cluster)
        cluster = [cand]
        hi = cand[1]
    if len(cluster) == 1:
        kept.append(cluster[0])
    elif cluster:
        kept += _greedy(cluster)
    return kept


def _greedy(cluster: list[Cand]) -> list[Cand]:
    get = _RANK.get
    cluster.sort(key=lambda c: (get(c[2], _TERM_RANK), c[0] - c[1], c[0], -c[3]))
    starts: list[int] = []  # kept spans, disjoint and sorted: starts/ends are both sorted
    ends: list[int] = []
    kept: list[Cand] = []
    bisect_right = bisect.bisect_right
    for cand in cluster:
        start, end = cand[0], cand[1]
        i = bisect_right(ends, start)  # first kept span ending after cand.start
        if i < len(starts) and starts[i] < end:
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        kept.insert(i, cand)
    return kept
