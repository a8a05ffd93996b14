"""Fold text for detection: compatibility forms to ASCII, invisible format characters out,
with a map from folded offsets back to the original text.

Pasted text hides values from ASCII patterns: a card number with no-break spaces or
full-width digits, an e-mail address with a full-width ``＠``, a key with a zero-width space
inside. Detectors run on the folded text; their spans are mapped back, so the original
characters (invisible ones inside a value included) are what gets replaced.

Folding is per character: a character whose NFKC form is different and plain ASCII is
replaced by it (no-break and other Unicode spaces become " ", full-width letters, digits and
"＠" become ASCII); a format character (category Cf: zero-width spaces and joiners, the word
joiner, soft hyphens, bidi marks, the BOM) is dropped. Everything else stays, so accented
letters, "€" and scripts beyond Latin keep their own offsets.
"""
from __future__ import annotations

import bisect
import re
import unicodedata


# The Basic Multilingual Plane, mathematical alphanumerics (bold and double-struck digits and
# letters), enclosed alphanumerics and the tag characters: every code point that folds to ASCII
# or is a format character lies in these ranges, except rare symbols nobody writes a value in.
_RANGES = (range(0x80, 0xD800), range(0xE000, 0x10000), range(0x1D400, 0x1D800), range(0x1F100, 0x1F200),
           range(0xE0000, 0xE0080))


def _fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in (c for r in _RANGES for c in r):
        char = chr(code)
        if unicodedata.category(char) == "Cf":
            table[code] = None
            continue
        folded = unicodedata.normalize("NFKC", char)
        if folded != char and folded.isascii() and folded.isprintable():
            table[code] = folded
    return table


FOLD = _fold_table()


def _class_of(codes: list[int]) -> str:
    """A regex character class of ``codes`` written as ranges (short, fast to compile)."""
    parts, start, prev = [], None, None
    for code in sorted(codes):
        if start is None:
            start = prev = code
        elif code == prev + 1:
            prev = code
        else:
            parts.append((start, prev))
            start = prev = code
    if start is not None:
        parts.append((start, prev))
    body = "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in parts)
    return f"[{body}]"


# Every foldable character of the BMP, or any astral one (checked against FOLD when found):
# a class holding astral ranges is scanned far more slowly than one of BMP characters only.
_FOLDABLE_RE = re.compile(_class_of([c for c in FOLD if c < 0x10000])[:-1] + "\U00010000-\U0010ffff]")


class Folded:
    """``text`` folded for detection, and the way back to offsets in the original.

    ``edits`` lists every folded character as (folded start, original start, folded
    length): each replaces exactly one original character with 0 (dropped) or more
    characters.
    """

    __slots__ = ("text", "_starts", "_edits", "_same_offsets")

    def __init__(self, text: str, edits: list[tuple[int, int, int]]) -> None:
        self.text = text
        self._edits = edits
        self._starts = [e[0] for e in edits]
        # Every edit one character for one (a no-break space, a full-width digit): offsets
        # do not move.
        self._same_offsets = all(e[2] == 1 for e in edits)

    def orig(self, i: int) -> int:
        """The original index of the character at folded index ``i``."""
        k = bisect.bisect_right(self._starts, i) - 1
        if k < 0:
            return i
        fstart, ostart, flen = self._edits[k]
        if i < fstart + flen:  # inside a replacement: the character it replaced
            return ostart
        return i - fstart - flen + ostart + 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original (start, end) of folded ``text[start:end]`` (non-empty)."""
        return self.orig(start), self.orig(end - 1) + 1

    def map_cands(self, cands: list) -> list:
        """Candidate tuples ``(start, end, ...)`` with their offsets mapped to the original."""
        if self._same_offsets:
            return [c for c in cands if c[1] > c[0]]
        orig = self.orig
        return [(orig(c[0]), orig(c[1] - 1) + 1, *c[2:]) for c in cands if c[1] > c[0]]


# Latin-1 bytes whose character folding leaves alone ("?" aside: it stands for every
# character beyond Latin-1 in a text's Latin-1 shade, and is looked at in the text).
_LATIN1_KEPT = bytes(b for b in range(256) if b not in FOLD and b != ord("?"))


def _unchanged(text: str) -> bool:
    """No character of ``text`` folds: its Latin-1 shade shows the few places to look at
    (European text: accents, "€", typographic quotes), far cheaper than the class scan."""
    shade = text.encode("latin-1", "replace")
    probe = shade.translate(None, _LATIN1_KEPT)
    if probe.count(b"?") != len(probe):
        return False  # a Latin-1 character that folds (no-break space, superscripts...)
    i = shade.find(b"?")
    while i >= 0:
        if ord(text[i]) in FOLD:
            return False
        i = shade.find(b"?", i + 1)
    return True


def fold(text: str) -> Folded | None:
    """The folded text with its offset map, or None when folding changes nothing."""
    if text.isascii() or _unchanged(text):
        return None
    m = _FOLDABLE_RE.search(text)
    if m is None:
        return None
    pieces: list[str] = []
    edits: list[tuple[int, int, int]] = []
    pos = out_len = 0
    search = _FOLDABLE_RE.search
    while m is not None:
        i = m.start()
        code = ord(text[i])
        if code not in FOLD:  # an astral character that stays
            m = search(text, i + 1)
            continue
        if i > pos:
            pieces.append(text[pos:i])
            out_len += i - pos
        repl = FOLD[code] or ""
        edits.append((out_len, i, len(repl)))
        pieces.append(repl)
        out_len += len(repl)
        pos = i + 1
        m = search(text, pos)
    if not edits:
        return None
    pieces.append(text[pos:])
    return Folded("".join(pieces), edits)
