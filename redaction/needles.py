"""Every occurrence of many literal keywords in one scan of the text.

The detectors gate their regexes on keywords, cue stems and heads found with
``str.find``: one pass over the whole text per keyword, and there are about a
hundred of them across seven languages. A :class:`NeedleIndex` finds them all
with one trie-shaped regex, tried only where a needle may start (a start filter computed
in C over the whole text), and the :class:`Hits` it returns
answers ``positions(needle)`` with the list ``str.find`` would have produced
(every occurrence, overlapping ones included, in order). A needle the index
does not hold is found with ``str.find`` as before, so a detector called with
``Hits.direct(low)`` (or with an index built for other keywords) gets the same
answer, only slower.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator


_FREQUENT = " etaoinsrhldcumfpgwybvkxjqz"


def _frequent_first(ch: str) -> tuple[int, str]:
    rank = _FREQUENT.find(ch)
    return (rank if rank >= 0 else len(_FREQUENT), ch)


def trie_pattern(words: Iterable[str]) -> str:
    """A regex for a set of literal words that matches what the alternation of the words,
    longest first, matches: at each node the longer words are tried before the word that
    ends there, and two words that match at one position are prefix and extension. One
    branch per character instead of one per word keeps each position cheap."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = None

    def build(node: dict) -> str:
        # The branches start with different characters, so their order changes no match;
        # the engine tries them in turn, so the characters most frequent in text go first.
        alts = [re.escape(ch) + build(node[ch]) for ch in sorted((k for k in node if k), key=_frequent_first)]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root) if root else "(?!)"


def find_all(hay: str, needle: str) -> list[int]:
    """Every start of `needle` in `hay`, overlapping ones included, in order."""
    out = []
    i = hay.find(needle)
    while i >= 0:
        out.append(i)
        i = hay.find(needle, i + 1)
    return out


class Hits:
    """Occurrences of needles in one string (see the module docstring). Its repr shows sizes only."""

    __slots__ = ("_found", "_indexed", "_hay")

    def __init__(self, hay: str, found: dict[str, list[int]], indexed: frozenset[str]) -> None:
        self._hay, self._found, self._indexed = hay, found, indexed

    @classmethod
    def direct(cls, hay: str) -> "Hits":
        """No index: every question is answered with ``str.find``."""
        return cls(hay, {}, frozenset())

    def positions(self, needle: str) -> list[int]:
        """Every start of ``needle`` in the string, ascending (overlaps included)."""
        found = self._found.get(needle)
        if found is not None:
            return found
        if needle in self._indexed:
            return []
        found = self._found[needle] = find_all(self._hay, needle)
        return found

    def among(self, needles: Iterable[str]) -> list[tuple[str, list[int]]]:
        """``(needle, positions(needle))`` for each of ``needles`` that occurs, in no set order."""
        if self._indexed.issuperset(needles):  # only the found ones need looking at
            wanted = needles if isinstance(needles, (set, frozenset)) else frozenset(needles)
            return [(n, found) for n, found in self._found.items() if found and n in wanted]
        return [(n, found) for n in needles if (found := self.positions(n))]

    def __contains__(self, needle: str) -> bool:
        if needle in self._found:
            return bool(self._found[needle])
        if needle in self._indexed:
            return False
        return needle in self._hay

    def __repr__(self) -> str:
        return f"Hits(len={len(self._hay)}, needles={len(self._found)})"


def _start_filter(needles: frozenset[str]) -> tuple[bytes, re.Pattern[str]] | None:
    """The class table and the lane pattern of :meth:`NeedleIndex.scan`'s start filter, or
    None (no needles, or one whose first three characters go beyond Latin-1).

    Each character found among the needles' first three characters gets a class of five
    bits (the rarest share the last one; class 0 is every other character). A position
    is a start when the classes of its character and the next two are those of a needle's
    first three (any class where the needle is shorter): a necessary condition, tested on
    all positions at once in C."""
    chars = {c for n in needles for c in n[:3]}
    if not needles or any(c > "\xff" for c in chars):
        return None
    table = bytearray(256)
    for k, ch in enumerate(sorted(chars, key=_frequent_first)):
        table[ord(ch)] = min(k + 1, _CLASSES - 1)
    codes: set[int] = set()
    every = range(_CLASSES)
    for n in needles:
        first = [table[ord(c)] for c in n[:3]]
        for b in (every if len(first) < 2 else (first[1],)):
            for c in (every if len(first) < 3 else (first[2],)):
                codes.add(first[0] << 10 | b << 5 | c)
    ordered, ranges = sorted(codes), []
    for code in ordered:  # runs of consecutive codes as ranges
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)
    return bytes(table), re.compile(f"[{body}]")


_CLASSES = 32  # five bits per character: a lane of three is under 0x8000, never a surrogate


def _lanes(hay: str, table: bytes) -> str:
    """One character per position of ``hay`` whose code is its class and the next two
    (``class << 10 | next << 5 | the one after``), computed in C: the classes are widened to
    16-bit lanes (UTF-16) and the three are combined by shifting the lanes as one integer."""
    wide = hay.encode("latin-1", "replace").translate(table).decode("latin-1").encode("utf-16-le")
    x = int.from_bytes(wide, "little")
    return (x << 10 | x >> 11 | x >> 32).to_bytes(len(wide), "little").decode("utf-16-le")


class NeedleIndex:
    """Finds every occurrence of a fixed set of literal needles in one scan."""

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = frozenset(n for n in needles if n)
        trie = re.compile(trie_pattern(self.needles))
        self._search, self._match = trie.search, trie.match
        # The trie matches the longest needle at a position; the others there are its prefixes.
        self._at = {w: tuple(sorted(p for p in self.needles if w.startswith(p))) for w in self.needles}
        self._filter = _start_filter(self.needles)

    @property
    def filtered(self) -> bool:
        """Whether :meth:`scan` has its start filter (every needle Latin-1 in its first three)."""
        return self._filter is not None

    def occurs_in(self, hay: str) -> bool:
        """Whether any needle occurs in ``hay`` (one search, no positions)."""
        return self._search(hay) is not None

    def scan(self, hay: str) -> Hits:
        """Every needle's occurrences."""
        found: dict[str, list[int]] = {}
        at = self._at
        for i, longest in self._starts(hay):
            for w in at[longest]:
                positions = found.get(w)
                if positions is None:
                    found[w] = [i]
                else:
                    positions.append(i)
        return Hits(hay, found, self.needles)

    def _starts(self, hay: str) -> Iterator[tuple[int, str]]:
        """(position, longest needle there) in order. The trie is tried only at the positions
        whose first three characters may begin a needle (_start_filter): about one letter in
        twenty, where a search tries it at every letter a needle begins with (half the text)."""
        if self._filter is None:
            search = self._search
            m = search(hay)
            while m is not None:
                yield m.start(), m.group()
                m = search(hay, m.start() + 1)
            return
        table, starts = self._filter
        match = self._match
        for start in starts.finditer(_lanes(hay, table)):
            m = match(hay, start.start())
            if m is not None:
                yield m.start(), m.group()

    def __repr__(self) -> str:
        return f"NeedleIndex(needles={len(self.needles)})"
