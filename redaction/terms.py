"""TermMatcher: fast case-insensitive matching of configured sensitive terms."""
from __future__ import annotations

import re
from typing import Iterable

from .needles import Hits
from .spans import Cand, Span, as_spans

_TYPE_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_WS = "\x00"  # trie token standing for "one or more whitespace characters"
# Up to this many distinct first words, TermMatcher finds its candidates with one
# str.find pass per word, which beats a regex scan of the whole text.
_MAX_HEADS = 24


def _key(term: str) -> str:
    return " ".join(term.lower().split())


def _trie_pattern(node: dict) -> str:
    """Regex for a trie; children before the end marker so longer terms win."""
    alts = []
    for ch in sorted(k for k in node if k):
        head = r"\s+" if ch == _WS else re.escape(ch)
        alts.append(head + _trie_pattern(node[ch]))
    terminal = "" in node
    if not alts:
        return ""
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    if terminal:
        return "(?:" + body + ")?" if len(alts) == 1 else body + "?"
    return body


class TermMatcher:
    """Matches (term, TYPE) pairs case-insensitively on unicode word boundaries.

    The terms are compiled once into a single trie-shaped regex, so matching
    cost grows with the text, not with the number of terms. At any position
    the longest term wins; matches never overlap. On duplicate terms the
    first type given wins. Whitespace inside a term matches any whitespace run.
    """

    __slots__ = ("_types", "_regex", "_regex_i", "_count", "_heads")

    def __init__(self, terms: Iterable[tuple[str, str]] = ()) -> None:
        types: dict[str, str] = {}
        for term, type_ in terms:
            if not isinstance(type_, str) or not _TYPE_RE.fullmatch(type_):
                raise ValueError("term type must be an uppercase identifier such as SUPPLIER")
            key = _key(term)
            if key and key not in types:
                types[key] = type_
        self._types = types
        self._count = len(types)
        self._regex, self._regex_i = self._compile(types) if types else (None, None)
        # Every match starts with the first word of its term. For a few distinct
        # first words, str.find over the lower-cased text locates the only
        # places the regex can match far faster than the regex scan itself.
        heads = {key.split(" ", 1)[0] for key in types}
        self._heads = tuple(sorted(heads)) if len(heads) <= _MAX_HEADS else None

    @staticmethod
    def _compile(types: dict[str, str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
        root: dict = {}
        for key in types:
            node = root
            for ch in key:
                node = node.setdefault(_WS if ch == " " else ch, {})
            node[""] = True
        body = _trie_pattern(root) + r"(?!\w)"
        # Case-sensitive pattern for lower-cased text: it starts with a literal
        # branch, which the regex engine scans for quickly. The IGNORECASE one
        # is the fallback when lower() changes the text length.
        return re.compile(body), re.compile(body, re.IGNORECASE)

    @classmethod
    def empty(cls) -> "TermMatcher":
        return cls(())

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __repr__(self) -> str:  # never show the terms themselves
        return f"TermMatcher(<{self._count} terms>)"

    def find(self, text: str, *, low: str | None = None) -> list[Span]:
        """Non-overlapping term spans in ``text``, sorted by start.

        ``low`` is ``text.lower()`` when the caller already has it.
        """
        return as_spans(self.scan(text, low=low))

    @property
    def heads(self) -> tuple[str, ...] | None:
        """The terms' distinct first words, lower-cased, when :meth:`scan` looks for them
        (few enough); None when it scans with its regex."""
        return self._heads

    def scan(self, text: str, *, low: str | None = None, hits: Hits | None = None) -> list[Cand]:
        """:meth:`find` as (start, end, type, score) tuples. ``hits``: needles found in ``low``
        (needles.py; the heads among them spare a str.find pass each)."""
        if self._regex is None:
            return []
        if low is None:
            low = text.lower()
        same = len(low) == len(text)
        regex, hay = (self._regex, low) if same else (self._regex_i, text)
        search = self._search_heads(low, hits) if same and self._heads is not None else regex.search
        out = []
        pos = 0
        while True:
            m = search(hay, pos)
            if m is None:
                return out
            if m.start() and (hay[m.start() - 1].isalnum() or hay[m.start() - 1] == "_"):
                pos = m.start() + 1  # not at a word start; a later term may start inside
                continue
            matched = text[m.start():m.end()]
            type_ = self._types.get(_key(matched)) or self._slow_type(matched)
            if type_ is not None:
                out.append((m.start(), m.end(), type_, 1.0))
            pos = m.end()

    def _search_heads(self, low: str, hits: Hits | None = None):
        """``self._regex.search`` over ``low``, trying only where a first word occurs
        (``hits``: needles found in ``low``; it answers for the heads it does not hold too)."""
        if hits is None:
            hits = Hits.direct(low)
        starts: set[int] = set()
        for head in self._heads:
            starts.update(hits.positions(head))
        ordered = sorted(starts)
        match = self._regex.match
        at = 0  # ordered[:at] lie before every ``pos`` asked so far (pos only grows)

        def search(hay: str, pos: int) -> re.Match[str] | None:
            nonlocal at
            while at < len(ordered):
                i = ordered[at]
                if i >= pos:
                    m = match(hay, i)
                    if m is not None:
                        return m
                at += 1
            return None

        return search

    def _slow_type(self, matched: str) -> str | None:
        for key, type_ in self._types.items():
            pattern = r"\s+".join(re.escape(part) for part in key.split(" "))
            if re.fullmatch(pattern, matched, re.IGNORECASE):
                return type_
        return None
