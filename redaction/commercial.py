"""Detectors for commercial data: PRICE amounts and COMMERCIAL_TERM phrases.

PRICE spans cover the amount with its currency marker, an optional range
("$10-$15", "€5 to €8") and an optional per-unit suffix ("/unit", "per kg").
COMMERCIAL_TERM spans cover the whole term phrase ("net 60", "MOQ 500 units",
"12% rebate", "exclusive distributor for the EU").
"""
from __future__ import annotations

import re
from bisect import bisect_left

from .needles import Hits
from .rules import YEAR_RE, compiled
from .shadow import classes
from .spans import COMMERCIAL_TERM, PRICE, Cand

# Amount: grouped thousands (1,200 / 1.299,00 / 1 200 with nbsp) or plain digits.
_NUM = r"(?:\d{1,3}(?:[,.'\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?![\d])"
# "4 250,00 €": plain-space thousands only where the currency follows.
_NUM_SP = r"\d{1,3}(?: \d{3})+(?:,\d{1,2})?(?![\d])"
# "€3 800,95": folding turned the no-break space that groups thousands into a plain one, so
# after a marker a plain-space grouped amount counts when its decimal comma shows it is one.
_NUM_SP_DEC = r"\d{1,3}(?: \d{3})+,\d{1,2}(?![\d])"
# "€3 800": without decimals too, unless a quantity follows ("€3 800 units" stays "€3", the
# price of 800 units) or the groups go on ("€1 234 567 units" is not "€1 234").
_NUM_SP_PLAIN = (r"\d{1,3}(?: \d{3})+(?![\d]| \d)"
                 r"(?!\s(?i:units?|pcs|pieces|items|sets|pairs|cases|cartons|pallets|boxes|kg|tonnes?|tons?|"
                 r"st(?:ü|u)ck|stk|einheiten|unités|pièces|unidades|uds|piezas|pezzi|unità|stuks|peças)(?!\w))")
_MAG_WORDS = ("k", "K", "m", "M", "mn", "bn", "million", "billion", "thousand")
_MAG = rf"(?:\s?(?:{'|'.join(_MAG_WORDS)})(?![A-Za-z]))?"
_SYM = r"(?:US\$|AU\$|CA\$|HK\$|NZ\$|S\$|R\$|[ACN]\$|\$|€|£|¥|₹|₩|₽|₺|₪|₫|₱)"
_CODES = (
    "USD EUR GBP JPY CNY RMB CHF CAD AUD NZD INR SEK NOK DKK PLN CZK HUF MXN BRL ZAR SGD HKD KRW TRY "
    "RUB AED SAR ILS THB IDR MYR PHP VND TWD RON BGN"
).split()
_CODE = r"(?:" + "|".join(_CODES) + r")"
_WORDCUR = r"(?:dollars?|euros?|pounds?(?:\ssterling)?|cents?|pence|yen|francs?)"

# Prices are found from their currency marker (located with str.find, much
# cheaper than a regex scan) and then extended to the amount before or after it.
_SYMBOLS = "$€£¥₹₩₽₺₪₫₱"
_DOLLAR_PREFIXES = ("US", "AU", "CA", "HK", "NZ", "S", "R", "A", "C", "N")
_DOLLAR_PREFIX_ENDS = frozenset(p[-1] for p in _DOLLAR_PREFIXES)  # cheap test before the loop
_WORDCUR_HEADS = ("dollar", "euro", "pound", "cent", "pence", "yen", "franc")
_CODE_SCAN_RE = re.compile("|".join(_CODES))
_CODE_SET = frozenset(_CODES)
_CLASS_CODE_RE = re.compile(rb"UUU(?<![aU]UUU)(?![aU])")  # on the class string (shadow.py)
_WORDCUR_RE = re.compile(rf"{_WORDCUR}(?![A-Za-z])", re.IGNORECASE)
_AFTER_MARKER_RE = re.compile(rf"\s?(?:{_NUM_SP_DEC}|{_NUM_SP_PLAIN}|{_NUM}){_MAG}(?:\s?{_CODE}(?![A-Za-z]))?")  # $12.50, US$ 3k, $5 USD
_AFTER_CODE_RE = re.compile(rf"\s?{_SYM}?\s?(?:{_NUM_SP_DEC}|{_NUM_SP_PLAIN}|{_NUM}){_MAG}")  # GBP 45, EUR 1.200
_BEFORE_MARKER_RE = re.compile(rf"(?:{_NUM_SP}|{_NUM}){_MAG}\s?$")  # 12,50 €, 1,200 USD
# Every character a _BEFORE_MARKER_RE match holds: digits, group and decimal separators,
# white space and the letters of the magnitudes (_MAG).
_BEFORE_CHARS_RE = re.compile(r"[\d\s,.'\u00a0\u202f" + "".join(sorted(set("".join(_MAG_WORDS)))) + "]*")


def _markers(text: str, low: str | None = None, cls: bytes | None = None,
             hits: Hits | None = None) -> list[tuple[int, int, str]]:
    """(start, end, kind) of currency markers; kind is "sym", "code" or "word". ``hits``:
    the keywords found in ``low`` (needles.py), None to find them here."""
    found: list[tuple[int, int, str]] = []
    for sym in "$" if text.isascii() else _SYMBOLS:
        i = text.find(sym)
        while i >= 0:
            start = i
            if sym == "$" and i and text[i - 1] in _DOLLAR_PREFIX_ENDS:
                for prefix in _DOLLAR_PREFIXES:
                    if text.startswith(prefix, i - len(prefix)) and i >= len(prefix):
                        start = i - len(prefix)
                        break
            found.append((start, i + 1, "sym"))
            i = text.find(sym, i + 1)
    if cls is None:
        cls = classes(text)
    if cls is None:  # no class string: one alternation scan beats 38 str.find calls
        for m in _CODE_SCAN_RE.finditer(text):
            i, end = m.span()
            if (i == 0 or not text[i - 1].isalpha()) and (end == len(text) or not text[end].isalpha()):
                found.append((i, end, "code"))
    else:
        # Every code found above is three capitals between non-letters: "UUU" in the
        # class string, not next to another letter (beyond Latin-1 a letter shows as
        # "x", so the test on ``text`` stays).
        n = len(text)
        for m in _CLASS_CODE_RE.finditer(cls):
            i = m.start()
            if (text[i:i + 3] in _CODE_SET and (i == 0 or not text[i - 1].isalpha())
                    and (i + 3 == n or not text[i + 3].isalpha())):
                found.append((i, i + 3, "code"))
    if low is None:
        low = text.lower()
    if len(low) == len(text):
        if hits is None:
            hits = Hits.direct(low)
        for head in _WORDCUR_HEADS:
            for i in hits.positions(head):
                m = _WORDCUR_RE.match(text, i)
                if m and (i == 0 or not text[i - 1].isalpha()):
                    found.append((i, m.end(), "word"))
    found.sort()
    return found


def _price_atoms(text: str, low: str | None = None, cls: bytes | None = None,
                 hits: Hits | None = None) -> list[tuple[int, int]]:
    atoms: list[tuple[int, int]] = []
    last = 0
    for start, end, kind in _markers(text, low, cls, hits):
        if start < last:
            continue
        word_start = start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "_$€£¥")
        if kind != "word" and word_start:
            after = (_AFTER_CODE_RE if kind == "code" else _AFTER_MARKER_RE).match(text, end)
            if after:
                atoms.append((start, after.end()))
                last = after.end()
                continue
        lo = max(last, start - 40)
        # A match ends at the marker and holds only _BEFORE_CHARS: search from where the run
        # of those before the marker begins (read backwards in C), not from 40 characters back.
        lo = start - _BEFORE_CHARS_RE.match(text[lo:start][::-1]).end()
        before = _BEFORE_MARKER_RE.search(text, lo, start)
        if before and (before.start() == 0 or not (text[before.start() - 1].isalnum()
                                                    or text[before.start() - 1] in "$€£¥")):
            atoms.append((before.start(), end))
            last = end
    return atoms


# "10-" / "10 to " before an amount whose marker comes last ("10-15 USD").
_RANGE_HEAD_RE = re.compile(rf"{_NUM}{_MAG}\s?(?:-|–|—|to)\s?$")
# "-15" / " to 15" after an amount whose marker comes first ("$10-15").
_RANGE_TAIL_RE = re.compile(rf"\s?(?:-|–|—|to)\s?(?:{_SYM}\s?)?{_NUM}{_MAG}(?![\w%])")
_UNIT_HINT_RE = re.compile(r"\s?/|\s(?:per|an?|each|ea)\b", re.IGNORECASE)
_RANGE_JOIN_RE = re.compile(r"\s?(?:-|–|—|to)\s?$")
_UNIT = (
    r"(?:unit|units|pc|pcs|piece|pieces|item|items|kg|g|lb|lbs|oz|ton|tonne|t|l|litre|liter|ml|m|m2|m²|sqm|sqft|ft|"
    r"each|ea|case|carton|pallet|box|pack|bottle|can|bag|jar|tube|dozen|pair|set|roll|seat|user|licen[cs]e|hour|hr|h|day|week|"
    r"month|mo|year|yr|annum|night|page|word|kwh|mwh|sku|order|shipment|container)"
)
_PER_UNIT_RE = re.compile(rf"(?:\s?/\s?{_UNIT}|\s(?:per|a|an)\s{_UNIT}|\s(?:each|ea\.?))(?![A-Za-z])", re.I)


def scan_prices(text: str, low: str | None = None, cls: bytes | None = None, rules=None,
                hits: Hits | None = None) -> list[Cand]:
    """``cls`` is ``shadow.classes(text)`` when the caller already has it; ``rules`` the
    compiled tables of the languages asked for (their per-unit phrases; all by default);
    ``hits`` the keywords found in ``low`` (needles.py)."""
    atoms = _price_atoms(text, low, cls, hits)
    if not atoms:
        return []
    if rules is None:
        rules = compiled()
    if low is None:
        low = text.lower()
    # The per-language unit phrases run on the lower-cased text (offsets must line up).
    unit_re = rules.price_unit if len(low) == len(text) else None
    merged: list[list[int]] = []
    # The str tests below are cheap necessary conditions for the regex after them.
    for start, end in atoms:
        # Join "$10 - $15" / "€5 to €8" into one range span (a joint is 1-4 characters).
        if merged and 0 < start - merged[-1][1] <= 4 and _RANGE_JOIN_RE.fullmatch(text, merged[-1][1], start):
            merged[-1][1] = end
            continue
        near = text[max(0, start - 4):start]  # a range head ends in a dash or "to" here
        if "-" in near or "to" in near or "\u2013" in near or "\u2014" in near:
            head = _RANGE_HEAD_RE.search(text, max(0, start - 24), start)
            if head and (head.start() == 0 or not text[head.start() - 1].isalnum()):
                start = head.start()
        merged.append([start, end])
    out: list[Cand] = []
    for start, end in merged:
        nxt = text[end:end + 2]
        if "-" in nxt or "t" in nxt or "\u2013" in nxt or "\u2014" in nxt:  # a range tail starts so
            tail = _RANGE_TAIL_RE.match(text, end)
            if tail:
                end = tail.end()
                nxt = text[end:end + 2]
        if nxt and (nxt[0] == "/" or nxt[0].isspace()):
            unit = _PER_UNIT_RE.match(text, end) if _UNIT_HINT_RE.match(text, end) else None
            if unit is None and unit_re is not None:
                unit = unit_re.match(low, end)
            if unit:
                end = unit.end()
        out.append((start, end, PRICE, 0.9))
    return out


_PCT = r"\d{1,3}(?:[.,]\d{1,2})?\s?(?:%|percent\b|pct\b)"
_ADJ = (
    r"(?:volume|annual|year-end|yearly|quarterly|gross|net|target|early[- ]payment|trade|loyalty|retro|"
    r"retrospective|bulk|quantity|promotional|distributor|dealer|reseller|partner|channel|contribution|"
    r"operating|cash|prompt[- ]payment|growth)"
)
_KIND = r"(?:rebate|discount|margin|markup|mark-up|commission|kickback|bonus|off)"
_REGION = r"(?:the\s)?[A-Z][\w-]*(?:\s(?:and|&|of)\s[A-Z][\w-]*|\s[A-Z][\w-]*)*"
_QTY = r"(?:\d{1,3}(?:[,.\u00a0]\d{3})+|\d+)(?:\s?k)?"
_QTY_UNIT = (
    r"(?:\s(?:units?|pcs|pieces|cases|cartons|pallets|kg|tonnes|tons|boxes|items|sets|pairs|rolls|"
    r"meters|metres|bottles|cans|bags|packs|dozen|containers|licen[cs]es|seats))?"
)
# One regex per phrase family, each starting with a literal or class (fast
# to scan for); the "not preceded by a word character or /" check is in Python.
_NET_RE = re.compile(  # run on lower-cased text: a literal prefix is fast to scan for
    r"net[\s-]?\d{1,3}(?:\sdays)?(?:\s?eom)?"
    r"(?!\d|[.,]\d|%|\s?(?:g|kg|lbs?|ml|l|oz|units?|pcs|percent)\b)"
)
_NET_RE_I = re.compile(_NET_RE.pattern, re.IGNORECASE)
_EARLY_PAY_RE = re.compile(r"\d{1,2}(?:[.,]\d{1,2})?%?/\d{1,2},?\s$")  # the "2/10 " of "2/10 net 30"
_DAYS_NET_RE = re.compile(r"days\snet")  # literal-led; the count before it is checked separately
_COUNT_BEFORE_RE = re.compile(r"\d{1,3}\s$")
_PCT_MARK_RE = re.compile(r"%|percent|pct")
_NUM_BEFORE_PCT_RE = re.compile(r"\d{1,3}(?:[.,]\d{1,2})?\s?$")
_PCT_FIRST_RE = re.compile(rf"{_PCT}\s(?:{_ADJ}\s){{0,2}}{_KIND}", re.IGNORECASE)
_TERM_RES = (  # (lower-case keyword that must occur, pattern)
    ("moq", re.compile(rf"MOQ(?:\s?(?:of|is|:|=|at))?\s?{_QTY}{_QTY_UNIT}")),
    ("minimum", re.compile(
        rf"[Mm](?i:inimum\sorder(?:\squantity)?(?:\s\(MOQ\))?(?:\s(?:of|is|at))?:?)\s{_QTY}{_QTY_UNIT}")),
    ("exclusiv", re.compile(
        rf"[Ee]xclusiv(?:e\s(?:distributor|distribution|supplier|supply|reseller|partner|agent|licen[cs]e|rights|"
        rf"dealer|representation)(?:\s(?:agreement|rights|deal|contract))?\s(?:for|in|across|within|covering|"
        rf"throughout)\s{_REGION}"
        r"|ity\s(?:until|through|till|thru|to|ending|ends|expires)\s(?:(?:the\s)?end\sof\s)?"
        r"(?:Q[1-4]\s|H[12]\s|(?:January|February|March|April|May|June|July|August|September|October|November|"
        r"December)\s(?:\d{1,2},?\s)?)?(?:19|20)\d{2}"
        rf"|ity\s(?:period\s)?(?:of|for)\s\d{{1,2}}\s(?:years?|months?)"
        rf"|ity\s(?:in|for|across|covering)\s{_REGION})"
    )),
)
# "margin of 35%": matched on lower-cased text, optionally extended back over an adjective.
_KIND_FIRST_RE = re.compile(
    r"(?:rebate|discount|margin|markup|mark-up|commission):?\s(?:(?:of|is|at|to|set\sat)\s)?"
    rf"(?:(?:up\sto|approximately|about|roughly|around)\s)?{_PCT}"
)
_ADJ_BEFORE_RE = re.compile(rf"{_ADJ}\s$")


# Characters that IGNORECASE matching (or lower()) folds onto an ASCII letter:
# where none occurs, a keyword found in the lower-cased text marks every place
# a case-insensitive keyword regex can match in the original text.
_FOLDS_TO_ASCII = "\u0130\u0131\u017f\u212a"  # İ ı ſ K(elvin)
_KIND_STEMS = ("rebate", "discount", "margin", "mark", "commission")  # _KIND_FIRST_RE's heads


def _plain_case(text: str, low: str) -> bool:
    return len(low) == len(text) and not any(c in text for c in _FOLDS_TO_ASCII)


def _matches_at(regex: re.Pattern[str], hay: str, low: str, stems: tuple[str, ...],
                hits: Hits | None = None) -> list[re.Match[str]]:
    """``list(regex.finditer(hay))`` for a regex that can only match where one of
    ``stems`` starts in ``low``: tries only those places (str.find is much
    cheaper than a regex scan that starts with a character class)."""
    if hits is None:
        hits = Hits.direct(low)
    starts: list[int] = []
    for stem in stems:
        starts.extend(hits.positions(stem))
    if len(stems) > 1:
        starts.sort()
    out, last = [], 0
    for i in starts:
        if i < last:
            continue
        m = regex.match(hay, i)
        if m:
            out.append(m)
            last = m.end() if m.end() > i else i + 1
    return out


def _free(text: str, i: int) -> bool:
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_/")


def _joined_start(prefix_re: re.Pattern[str], text: str, start: int, reach: int) -> int | None:
    """Where a term starting at ``start`` begins once a prefix ending there (found within
    ``reach`` characters) joins it; None when neither starts on a free boundary."""
    prefix = prefix_re.search(text, max(0, start - reach), start)
    if prefix and _free(text, prefix.start()):
        return prefix.start()
    return start if _free(text, start) else None


def scan_commercial_terms(text: str, low: str | None = None, hits: Hits | None = None) -> list[Cand]:
    """``hits``: the keywords found in ``low`` (needles.py), None to find them here."""
    found: list[tuple[int, int]] = []
    if low is None:
        low = text.lower()
    if hits is None:
        hits = Hits.direct(low)
    same = len(low) == len(text)
    for m in (_NET_RE.finditer(low) if same else _NET_RE_I.finditer(text)):
        start = _joined_start(_EARLY_PAY_RE, text, m.start(), 12)
        if start is not None:
            found.append((start, m.end()))
    plain = _plain_case(text, low)
    for hint, regex in _TERM_RES:
        if hint in hits:  # skip the scan when its keyword is absent
            matches = _matches_at(regex, text, low, (hint,), hits) if plain else regex.finditer(text)
            found.extend((m.start(), m.end()) for m in matches if _free(text, m.start()))
    for m in _DAYS_NET_RE.finditer(text):
        count = _COUNT_BEFORE_RE.search(text, max(0, m.start() - 4), m.start())
        if count and _free(text, count.start()):
            found.append((count.start(), m.end()))
    # The marks of _PCT_MARK_RE ("%", "percent", "pct") cannot overlap: find them directly.
    marks = sorted([*hits.positions("%"), *hits.positions("percent"), *hits.positions("pct")])
    for mark in marks:
        num = _NUM_BEFORE_PCT_RE.search(text, max(0, mark - 8), mark)
        if num:
            term = _PCT_FIRST_RE.match(text, num.start())
            if term and _free(text, num.start()):
                found.append((num.start(), term.end()))
    if same and marks:  # marks: "%", "pct" or "percent" occurs
        for m in _matches_at(_KIND_FIRST_RE, low, low, _KIND_STEMS, hits):
            start = _joined_start(_ADJ_BEFORE_RE, low, m.start(), 26)
            if start is not None:
                found.append((start, m.end()))
    return [(a, b, COMMERCIAL_TERM, 0.85) for a, b in found]


def scan_term_rules(text: str, low: str, rules, hits: Hits | None = None) -> list[Cand]:
    """COMMERCIAL_TERM phrases from the per-language tables (``rules.compiled(...).terms``);
    ``hits``: the keywords found in ``low`` (needles.py), None to find them here."""
    if len(low) != len(text):  # lower() changed the length: offsets would not line up
        return []
    if hits is None:
        hits = Hits.direct(low)
    out: list[Cand] = []
    n = len(low)
    head_starts: dict[tuple[str, ...], list[int]] = {}
    present = dict(hits.among(rules.term_hints))
    years, year_search = rules.term_years, YEAR_RE.search
    for hint, regex in rules.terms:
        occurrences = present.get(hint)
        if occurrences is None:
            continue
        word_starts = rules.term_starts[hint]  # the word starts a match can begin at
        heads = rules.term_heads[hint]
        if heads is not None:  # every match begins where one of these keywords does
            starts = head_starts.get(heads)
            if starts is None:
                starts = head_starts[heads] = (
                    hits.positions(heads[0]) if len(heads) == 1
                    else sorted({i for head in heads for i in hits.positions(head)}))
            at_start, n_starts = word_starts.match, len(starts)
        reach = 10 if hint == "%" else _TERM_REACH
        needs_year = hint in years
        k, count = 0, len(occurrences)
        last = 0
        while k < count:
            i = occurrences[k]
            # Every rule's match holds its keyword, at most ``reach`` characters after the
            # match starts, and starts a word: try only those starts around each occurrence.
            m = None
            lo = i - reach if i - reach > last else last
            hi = i + len(hint) + 160 if i + len(hint) + 160 < n else n
            if needs_year and year_search(low, lo, hi) is None:
                k += 1  # every match ends in a year, and none lies within reach
                continue
            if heads is None:
                for w in word_starts.finditer(low, lo, i + 1):
                    m = regex.match(low, w.start(), hi)
                    if m is not None and m.end() > i:
                        break
                    m = None
            else:  # the same word starts, less those where no head begins (no match can)
                j = bisect_left(starts, lo)
                while j < n_starts and starts[j] <= i:
                    w = starts[j]
                    j += 1
                    if at_start(low, w) is None:
                        continue
                    m = regex.match(low, w, hi)
                    if m is not None and m.end() > i:
                        break
                    m = None
            if m is not None:
                if _free(text, m.start()):
                    out.append((m.start(), m.end(), COMMERCIAL_TERM, 0.85))
                last = m.end()
                k = bisect_left(occurrences, last, k + 1)  # the next occurrence at or after the match's end
                continue
            k += 1
    return out


_TERM_REACH = 40
# The keywords this module finds in the lower-cased text (besides the rules' TERM_RULES
# keywords): detect.py finds them all in one scan (needles.py).
LOW_NEEDLES = (*_WORDCUR_HEADS, *(hint for hint, _ in _TERM_RES), *_KIND_STEMS, "%", "percent", "pct")
