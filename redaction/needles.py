"""Every occurrence of many literal keywords in one scan of the text.

The detectors gate their regexes on keywords, cue stems and heads found with
``str.find``: one pass over the whole text per keyword, and there are about a
hundred of them across seven languages. A :class:`NeedleIndex` finds them all
with one search of a trie-shaped regex, and the :class:`Hits` it returns
answers ``positions(needle)`` with the list ``str.find`` would have produced
(every occurrence, overlapping ones included, in order). A needle the index
does not hold is found with ``str.find`` as before, so a detector called with
``Hits.direct(low)`` (or with an index built for other keywords) gets the same
answer, only slower.
"""
from __future__ import annotations

import re
from typing import Iterable


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


class NeedleIndex:
    """Finds every occurrence of a fixed set of literal needles in one scan."""

    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = frozenset(n for n in needles if n)
        self._search = re.compile(trie_pattern(self.needles)).search
        # The trie matches the longest needle at a position; the others there are its prefixes.
        self._at = {w: tuple(sorted(p for p in self.needles if w.startswith(p))) for w in self.needles}

    def occurs_in(self, hay: str) -> bool:
        """Whether any needle occurs in ``hay`` (one search, no positions)."""
        return self._search(hay) is not None

    def scan(self, hay: str) -> Hits:
        found: dict[str, list[int]] = {}
        search, at = self._search, self._at
        m = search(hay)
        while m is not None:
            i = m.start()
            for w in at[m.group()]:
                positions = found.get(w)
                if positions is None:
                    found[w] = [i]
                else:
                    positions.append(i)
            m = search(hay, i + 1)
        return Hits(hay, found, self.needles)

    def __repr__(self) -> str:
        return f"NeedleIndex(needles={len(self.needles)})"
