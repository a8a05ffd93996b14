"""PHONE_NUMBER detection: cheap candidate regex, then ``phonenumbers`` validation."""
from __future__ import annotations

import bisect
import re
from functools import lru_cache
from typing import Sequence

import phonenumbers

from .phonevalid import valid_number
from .rules import compiled
from .pii import NON_DIGIT_RE, digit_runs, iban_head_before
from .shadow import translate_table
from .spans import PHONE_NUMBER, Cand

# Candidates: optional +/00 prefix, 7-15 digits, single separators or parens. A comma
# before or after is a CSV delimiter unless it joins digits as a decimal separator would
# (one to three digits on the other side).
_PHONE_RE = re.compile(
    r"(?<![\w+#/.$\u00a3\u20ac-])(?<!\d,)(?:\+|00)?(?:\(\d{1,5}\)|\d+)"
    r"(?:(?:[ .\-/]|(?<=\)))\(?\d+\)?){0,7}"
    r"(?![\w]|[.:/-]?\d|(?<=(?<!\d)\d),\d|(?<=(?<!\d)\d\d),\d|(?<=(?<!\d)\d\d\d),\d)"
)
_DATE_LIKE_RE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4}-\d{2,4}")
_NANP = frozenset({"US", "CA"})
_LAST_GROUP_RE = re.compile(r"[ .\-/]\(?\d+\)?$")
_CAND_HEAD_RE = re.compile(r"[+(\d]")  # what a _PHONE_RE match can start with


@lru_cache(maxsize=2048)
def _phone_valid(cand: str, region: str) -> bool:
    """phonenumbers validity. International and NANP candidates skip
    ``phonenumbers.parse`` (it costs more than the validation itself), and the
    verdict comes from ``phonevalid.valid_number``, phonenumbers' own test on
    patterns compiled once.

    A pure function of its arguments, memoised in process: the same number
    recurs across fields and requests (signatures, switchboards). The cache is
    never logged or exposed; only ``clear_cache()`` and ``cache_info()``
    (counts) touch it from outside.
    """
    digits = NON_DIGIT_RE.sub("", cand)
    if cand[0] == "+" or cand.startswith("00"):
        if "(0)" not in cand:
            intl = digits[2:] if cand[0] == "0" else digits
            for n in (1, 2, 3):
                if int(intl[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                    national = intl[n:]
                    if not national:
                        return False
                    # The national significant number of PhoneNumber(national_number=int(national))
                    # with its leading zeros kept (italian_leading_zero).
                    zeros = len(national) - len(national.lstrip("0"))
                    return valid_number(int(intl[:n]), "0" * zeros + str(int(national)))
            return False
    elif region in _NANP:
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        if len(digits) != 10:
            return False
        return valid_number(1, str(int(digits)))
    try:
        number = phonenumbers.parse(cand, region)
    except phonenumbers.NumberParseException:
        return False
    return valid_number(number.country_code, phonenumbers.national_significant_number(number))


def clear_cache() -> None:
    """Forget memoised validation results (for benchmarks measuring cold cost)."""
    _phone_valid.cache_clear()
    _national_valid.cache_clear()
    _valid_in_other_regions.cache_clear()


# Characters a _PHONE_RE candidate may hold besides digits.
_PHONE_PUNCT = translate_table(str.maketrans("", "", "+ .-/()"))
_PHONE_PUNCT_BYTES = b"+ .-/()"


def _digits_of(cand: str) -> str:
    """The candidate without its punctuation (bytes.translate deletes in C; str.translate
    leaves its fast path for every character it deletes)."""
    if cand.isascii():
        return cand.encode("ascii").translate(None, _PHONE_PUNCT_BYTES).decode("ascii")
    return cand.translate(_PHONE_PUNCT)


def scan_phones(
    text: str,
    region: str = "US",
    blocked: Sequence[Cand] = (),
    runs: Sequence[tuple[int, int]] | None = None,
    rules=None,
    cls: bytes | None = None,
) -> list[Cand]:
    """:func:`find_phones` on candidate tuples (``blocked`` sorted by end); ``rules`` are
    the compiled tables of the languages asked for (``rules.compiled()``, all by default);
    ``cls`` is ``shadow.classes(text)`` when the caller has it."""
    if rules is None:
        rules = compiled()
    out: list[Cand] = []
    last = -1
    ends = [s[1] for s in blocked]  # bisect on plain ints, built once
    n_text, n_blocked = len(text), len(blocked)
    finditer = _PHONE_RE.finditer
    memo: dict = {}  # cues, table blocks and headers found for this text (see _phone_ok)
    for start, end in digit_runs(text) if runs is None else runs:
        lo, hi = start - 4 if start > 4 else 0, end + 2 if end + 2 < n_text else n_text
        scan_from = lo
        if blocked:
            # Skip a run inside a higher-priority span (a card, an IBAN): _phone_at
            # would drop every candidate in it. Candidates start with "+", "(" or a
            # digit, at or before hi - 6 (7+ characters, one more for a stray "(").
            head = _CAND_HEAD_RE.search(text, lo, start)
            first = lo if head else start
            i = bisect.bisect_left(ends, first)
            if i < n_blocked and blocked[i][0] <= first and blocked[i][1] > hi - 6:
                continue
            # No candidate starts before that first "+", "(" or digit: the scan
            # need not try those positions (its lookbehind still sees them).
            scan_from = head.start() if head else start
        for m in finditer(text, scan_from, hi):
            if m.end() - m.start() < 7:
                continue
            span = _phone_at(text, m, region, blocked, ends, rules, memo, cls)
            if span is not None and span[0] >= last:
                out.append(span)
                last = span[1]
    return out


def _phone_at(
    text: str, m: re.Match[str], region: str, blocked: Sequence[Cand], ends: Sequence[int], rules=None,
    memo: dict | None = None, cls: bytes | None = None,
) -> Cand | None:
    start, cand = m.start(), m.group()
    # Drop a parenthesis that belongs to the surrounding prose.
    if cand[-1] == ")" and cand.count(")") > cand.count("("):
        cand = cand[:-1]
    if cand[0] == "(" and cand.count("(") > cand.count(")"):
        cand, start = cand[1:], start + 1
    # The span that may overlap a candidate starting here: the first blocked
    # span (by end) ending after ``start`` (same test as before, hoisted out of
    # the retry loop since every retry keeps the same start).
    hit = None
    if blocked:
        i = bisect.bisect_left(ends, start)  # first span ending at or after start
        if i < len(blocked) and blocked[i][1] > start:
            hit = blocked[i][0]
            if hit <= start:
                return None  # every retry overlaps it
        # Stop before a higher-priority span (e.g. a card right after the number).
        i = bisect.bisect_left(ends, start + 1)
        if i < len(blocked) and start < blocked[i][0] < start + len(cand):
            cand = cand[: blocked[i][0] - start].rstrip(" .-/(")
    # The candidate may have run on into a following number ("+44 20 7946 0958 2024"):
    # retry without its last group or two.
    for _ in range(3):
        if (hit is None or hit >= start + len(cand)) and _phone_ok(text, start, cand, region, rules, memo, cls):
            return (start, start + len(cand), PHONE_NUMBER, 0.85)
        last_group = _LAST_GROUP_RE.search(cand)  # anchored at the end: at most one match
        shorter = cand[:last_group.start()] if last_group else cand
        if shorter == cand or len(shorter) < 7:
            return None
        cand = shorter
    return None


# A number that starts with a year and a separator is a lot, batch or reference number
# ("2024-1187-33", "2025 8430 78") unless a phone cue says otherwise.
_YEAR_LED_RE = re.compile(r"(?:19|20)\d\d[ ./-]")
_GAP_RE = re.compile(r"[^\d\n]{0,28}")


def _cue(text: str, start: int, rules, cls: bytes | None = None) -> str | None:
    """"p" when a phone cue comes shortly before ``start``, "a" for an anti-cue (lot, order,
    invoice...), None for neither. The closest one counts. ``cls``: ``shadow.classes(text)``
    or None."""
    lo = start - 40 if start > 40 else 0
    # The window after a space: rules.phone_cue_after consumes the character before a cue,
    # which the space stands for at the window's start (what phone_cue's lookbehind sees
    # there). No cue holds a digit or a line break (rules.Compiled checks), and none may
    # stand between the closest cue and the number (_GAP_RE): no match spans the last of
    # them, and one before it is refused, so the scan starts there.
    window = " " + text[lo:start].lower()
    pos = window.rfind("\n")
    if pos < 0:
        pos = 0
    if cls is not None and len(window) == start - lo + 1:
        digit = cls.rfind(b"d", lo + pos, start)
        if digit >= 0:
            pos = digit + 1 - lo
    last = None
    for m in rules.phone_cue_after.finditer(window, pos):
        last = m
    if last is None or not _GAP_RE.fullmatch(window, last.end()):
        return None
    return rules.phone_cue_kind[last.group("w")]


_HEADER_WORD_RE = re.compile(r"[^\W\d_]+")
# Every character str.isdigit() holds (ASCII digits, the Latin-1 superscripts) and every one
# beyond Latin-1.
_MAYBE_DIGIT_RE = re.compile(r"[^\x00-/:-\xb1\xb4-\xb8\xba-\xff]")
_DELIMITERS = ";\t|,"


def _column_cue(text: str, start: int, end: int, rules, memo: dict | None = None) -> str | None:
    """"p" when the number is a cell under a phone column's header in a pasted table (CSV,
    TSV, a "|" table), "a" under a column that holds no phones (sku, ean, ref...), else
    None. The header is the first line of the block of lines holding the row's delimiter;
    a line with digits is no header. ``memo`` keeps block starts and headers for one scan."""
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    if le < 0:
        le = len(text)
    for delim in _DELIMITERS:
        if text.find(delim, ls, le) >= 0:
            break
    else:
        return None
    if memo is None:
        memo = {}
    hs = ls
    climbed = []
    while hs > 0:  # climb while the line above holds the delimiter too
        known = memo.get((hs, delim))
        if known is not None:
            hs = known
            break
        climbed.append(hs)
        ps = text.rfind("\n", 0, hs - 1) + 1
        if text.find(delim, ps, hs - 1) < 0:
            break
        hs = ps
    for line in climbed:  # each line climbed from reaches the same block start
        memo[(line, delim)] = hs
    memo[(ls, delim)] = hs
    if hs == ls:
        return None
    header = memo.get(("header", hs, delim))
    if header is None:
        header = memo[("header", hs, delim)] = _header_cells(text, hs, delim, rules)
    if not header:
        return None
    left, right = text.count(delim, ls, start), text.count(delim, end, le)
    # A row with more cells than its header (a comma inside an unquoted cell) is read both
    # ways: from the left for the cells before that comma, from the right for those after.
    kinds = [header[left] if left < len(header) else None]
    if left + right + 1 > len(header) and right < len(header):
        kinds.append(header[len(header) - 1 - right])
    return "p" if "p" in kinds else "a" if "a" in kinds else None


def _header_cells(text: str, hs: int, delim: str, rules) -> tuple:
    """Per header cell: "p" (a phone column), "a" (no phones) or None; () for no header."""
    he = text.find("\n", hs)
    line = text[hs:len(text) if he < 0 else he]
    # str.isdigit() anywhere in the line: a regex scan in C for the characters that may be one
    # (ASCII and Latin-1 digits, anything beyond Latin-1), the exact test only where one occurs.
    maybe = _MAYBE_DIGIT_RE.search(line)
    if maybe is not None and (maybe.group() <= "\xff" or any(c.isdigit() for c in line[maybe.start():])):
        return ()
    kinds = []
    for cell in line.lower().split(delim):
        words = _HEADER_WORD_RE.findall(cell)
        joined = "".join(words)
        if len(words) > 4 or len(cell) > 40:
            kinds.append(None)
        elif joined in rules.phone_columns or any(w in rules.phone_columns for w in words):
            kinds.append("p")
        elif joined in rules.anti_columns or any(w in rules.anti_columns for w in words):
            kinds.append("a")
        else:
            kinds.append(None)
    return tuple(kinds) if ("p" in kinds or "a" in kinds) else ()


def _intl_plausible(cand: str, digits: str | None = None) -> bool:
    """An international number: a known country code and a national part of plausible length
    (``digits``: ``_digits_of(cand)`` when the caller has it)."""
    if digits is None:
        digits = _digits_of(cand)  # a candidate holds digits and these only
    intl = digits[2:] if cand.startswith("00") else digits
    for n in (1, 2, 3):
        if int(intl[:n] or 0) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return 6 <= len(intl) - n <= 13
    return False


def _phone_ok(text: str, start: int, cand: str, region: str, rules=None, memo: dict | None = None,
              cls: bytes | None = None) -> bool:
    """The checks after the overlap test: digit count, cue words, date shape, validity.

    A phone cue before the number (rules.PHONE_CUES) is enough with a phone shape: fiction
    and test ranges, and ranges the metadata does not know yet, are still phone numbers
    when someone writes "Tel." before them. An anti-cue (a lot, an order number) is never
    one. Without a cue, an international number needs a known country code, and a national
    one must be valid in the given region or one of the languages' regions. A table
    cell counts as cued by its column's header (rules.PHONE_COLUMNS; an anti-cue header
    such as "sku" or "ean" is an anti-cue).
    """
    number = _digits_of(cand)
    digits = len(number)
    if not 7 <= digits <= 15 or _DATE_LIKE_RE.fullmatch(cand):
        return False
    rules = rules or compiled()
    if memo is None:
        cue = _cue(text, start, rules, cls)
    else:  # a retry without the last group has the same start (_phone_at)
        cue = memo.get(start, 0)
        if cue == 0:
            cue = memo[start] = _cue(text, start, rules, cls)
    if cue is None:
        cue = _column_cue(text, start, start + len(cand), rules, memo)
    if cue == "a":
        return False
    intl = cand[0] == "+" or cand.startswith("00")
    if cue == "p":
        return True
    if digits == len(cand) and not intl:
        return False  # a bare digit run is a phone number only after a cue
    if intl:
        return _intl_plausible(cand, number) or _phone_valid(cand, region)
    if _YEAR_LED_RE.match(cand) or iban_head_before(text, start):
        return False  # a lot number, or digits inside an IBAN-shaped token
    if _phone_valid(cand, region):
        return True
    return _valid_in_other_regions(number, region, rules.phone_regions)


@lru_cache(maxsize=4096)
def _valid_in_other_regions(digits: str, region: str, regions: tuple[str, ...]) -> bool:
    """Whether ``digits`` is a national number of one of ``regions`` other than ``region``
    (_national_valid for each, memoised as one answer like it)."""
    return any(_national_valid(digits, r) for r in regions if r != region)


@lru_cache(maxsize=None)
def _region_codes(region: str) -> tuple[int, str]:
    """(country code, trunk prefix or "") of a region, from phonenumbers' metadata."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return 0, ""
    return metadata.country_code, metadata.national_prefix or ""


@lru_cache(maxsize=4096)
def _national_valid(digits: str, region: str) -> bool:
    """A national number of ``region``: its trunk prefix where the region writes one ("0"
    in DE, FR, NL...), then a national significant number valid for the metadata. Checked
    on phonevalid's compiled rules, without phonenumbers.parse. Memoised like _phone_valid."""
    country_code, trunk = _region_codes(region)
    if not country_code:
        return False
    if trunk:
        if not digits.startswith(trunk):
            return False
        digits = digits[len(trunk):]
    return bool(digits) and valid_number(country_code, digits)
