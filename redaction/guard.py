"""Streaming output guard: mask secrets and card numbers the model produced itself."""
from __future__ import annotations

import bisect
import re
from functools import lru_cache
from typing import Iterable

from .detect import scan
from .folding import fold
from .needles import NeedleIndex
from .pii import may_hold_card
from .rules import compiled
from .secrets import CUE_REACH, cue_matches, may_hold_secret
from .restore import Segment, merge_plain
from .spans import CREDIT_CARD, SECRET, resolve_cands

MASKS = {SECRET: "[REDACTED SECRET]", CREDIT_CARD: "[REDACTED CARD]"}
DEFAULT_MAX_HOLDBACK = 1024

# A run of non-space characters followed by whitespace. Only run starts are tried (the
# lookbehind) and a run is never given back (possessive): a long run costs its length once.
_TOKEN_BEFORE_WS_RE = re.compile(r"(?<!\S)\S++(?=\s)")
# A token ending like this may continue into a match across whitespace:
# a card digit group, a "password:"/"key ="/"Bearer" label, or a quote.
_HOT_WORDS = ("password", "passwd", "pwd", "secret", "key", "token", "bearer")
_HOT_MARKS = ":=\"'`"
_HOT_END_RE = re.compile(rf"(?:\d|[{_HOT_MARKS}]|(?i:{'|'.join(_HOT_WORDS)}))$")
# _hot's ASCII path, from the same words and marks: its longest match, its one-character ones.
_HOT_REACH = max(map(len, _HOT_WORDS))
_HOT_LAST = "0123456789" + _HOT_MARKS


def _hot(hay: str, start: int, end: int) -> bool:
    """``_HOT_END_RE`` matches the end of the token ``hay[start:end]`` (on ASCII, without it)."""
    tail = hay[max(start, end - _HOT_REACH):end]  # no match of it is longer
    if tail.isascii():
        return tail[-1] in _HOT_LAST or tail.lower().endswith(_HOT_WORDS)
    return _HOT_END_RE.search(tail) is not None


_PEM_END_RE = re.compile(r"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")


@lru_cache(maxsize=None)
def _cue_stems(rules) -> NeedleIndex:
    return NeedleIndex(rules.secret_stems)


def _held(buf: str) -> list[tuple[int, int]]:
    """Stretches no cut may fall in: a few words after a secret cue word ("the password for
    the portal is ..."), where the value may still come, and a PEM block up to its END line."""
    rules = compiled()
    low = buf.lower()
    stems = _cue_stems(rules)
    # A cue begins with a stem (cue_matches tries only there): without one, no zone.
    zones = [(m.end(), m.end() + CUE_REACH) for m in cue_matches(low, rules, stems.scan(low))] \
        if stems.occurs_in(low) else []
    i = buf.find("-----BEGIN")
    while i >= 0:
        end = _PEM_END_RE.search(buf, i)
        zones.append((i, end.end() if end else len(buf) + 1))
        i = buf.find("-----BEGIN", i + 1)
    return zones


def _token_cuts(buf: str, base: int = 0, known: list[int] | None = None) -> list[int]:
    """Ends of the tokens from ``base`` on (a token cut at ``base`` starts there) that are
    followed by whitespace and cannot start or continue a match across it. ``known``: those
    of a prefix of ``buf`` (from 0): they hold for any text that extends it, so only the
    tokens after the last of them are looked at."""
    if known:
        last = known[-1]  # a whitespace position: no token spans it
        return known + [m.end() for m in _TOKEN_BEFORE_WS_RE.finditer(buf, last) if not _hot(buf, m.start(), m.end())]
    hay = buf[base:] if base else buf  # the slice's start counts as a run start
    return [m.end() + base for m in _TOKEN_BEFORE_WS_RE.finditer(hay) if not _hot(hay, m.start(), m.end())]


def _safe_cuts(buf: str, base: int, cuts: list[int] | None = None) -> list[int]:
    """The cuts of :func:`_token_cuts` (``cuts``, when the caller has them) outside _held."""
    if cuts is None:
        cuts = _token_cuts(buf, base)
    zones = _held(buf) if cuts else []
    if zones:
        cuts = [c for c in cuts if not any(a <= c < b for a, b in zones)]
    return cuts


class OutputGuard:
    """Mask SECRET / CREDIT_CARD values in a chunked text stream.

    Text is released up to the last *safe cut*: a whitespace character that
    follows a token which cannot start or continue a cross-whitespace match.
    No pattern can span a safe cut, so the output does not depend on how the
    stream was chunked. Whitespace after a safe cut is released at once. Plain
    prose is therefore held back by at most its last word; a run without a safe
    cut is force-released after ``max_holdback`` characters (forced cuts fall at
    positions fixed by the text, so chunking still does not matter, but a match
    longer than the bound is not masked).
    """

    def __init__(self, types: Iterable[str] = (SECRET, CREDIT_CARD), max_holdback: int = DEFAULT_MAX_HOLDBACK) -> None:
        self._types = tuple(t for t in types if t in MASKS)
        if max_holdback < 64:
            raise ValueError("max_holdback must be at least 64")
        self._max = max_holdback
        self._buf = ""
        self._tokens: list[int] = []  # _token_cuts of self._buf
        self._counts: dict[str, int] = {}

    @property
    def masked_counts(self) -> dict[str, int]:
        return dict(self._counts)

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, chunk: str) -> str:
        return "".join(s.text for s in self.feed_segments(chunk))

    def flush(self) -> str:
        return "".join(s.text for s in self.flush_segments())

    def feed_segments(self, chunk: str) -> list[Segment]:
        buf = self._buf + chunk
        tokens = _token_cuts(buf, 0, self._tokens)  # a held buffer is not scanned again
        cuts = _safe_cuts(buf, 0, tokens)
        out: list[Segment] = []
        start = pos = 0  # start: begin of pending scan piece; pos: last cut
        while True:
            k = bisect.bisect_right(cuts, pos + self._max) - 1
            if k >= 0 and cuts[k] > pos:
                pos = cuts[k]  # safe cut: scanning across it changes nothing
            elif len(buf) - pos > self._max:
                pos += self._max  # forced cut: scan the pieces separately
                out.extend(self._mask(buf[start:pos]))
                start = pos
                # The token cut in two is judged from the cut on, as it will be
                # when a later feed starts from this point.
                cuts = _safe_cuts(buf, pos)
                tokens = []  # the next feed looks at the rest afresh, from its start
            else:
                break
        # Whitespace right after a safe cut goes out too: no match starts with whitespace,
        # and one that contains it would have to span the cut. (Most tokens start with a
        # space, so this releases the first delta at the first token.)
        rest = buf[pos:]
        pos += len(rest) - len(rest.lstrip())
        out.extend(self._mask(buf[start:pos]))
        self._buf = buf[pos:]
        # The rest starts after whitespace (or at a forced cut, where ``tokens`` is empty).
        self._tokens = [c - pos for c in tokens if c > pos]
        return merge_plain(out)

    def flush_segments(self) -> list[Segment]:
        rest, self._buf, self._tokens = self._buf, "", []
        return merge_plain(self._mask(rest))

    def _mask(self, text: str) -> list[Segment]:
        if not text:
            return []
        spans = resolve_cands(scan(text, types=self._types)) if self._types and self._may_hold(text) else []
        if not spans:
            return [Segment(text)]
        out: list[Segment] = []
        pos = 0
        for start, end, type_, _ in spans:
            out.append(Segment(text[pos:start]))
            out.append(Segment(MASKS[type_], type=type_, masked=True))
            self._counts[type_] = self._counts.get(type_, 0) + 1
            pos = end
        out.append(Segment(text[pos:]))
        return out

    def _may_hold(self, text: str) -> bool:
        """False only where ``scan(text, types=self._types)`` surely finds nothing (most
        released pieces: a word or two of prose), checked on the text its detectors see."""
        folded = fold(text)
        if folded is not None:
            text = folded.text
        if CREDIT_CARD in self._types and may_hold_card(text):
            return True
        return SECRET in self._types and may_hold_secret(text, text.lower())
