"""Detectors for contact and financial identifiers: e-mail, card, IBAN, IP.

Every detector runs a cheap precompiled regex first and only calls the
validator (Luhn, mod-97, ``ipaddress``) on its candidates.
"""
from __future__ import annotations

import ipaddress
import re
from types import MappingProxyType
from typing import Mapping

from stdnum import iban as _iban
from stdnum import numdb

from .shadow import classes, translate_table
from .spans import CREDIT_CARD, EMAIL_ADDRESS, IBAN_CODE, IP_ADDRESS, Cand

# Anchored on "@": scan back for the local part, forward for the domain.
_LOCAL_RE = re.compile(r"[A-Za-z0-9._%+-]{1,64}$")
_LOCAL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"  # _LOCAL_RE's class
_DOMAIN_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.\w)")


def scan_emails(text: str) -> list[Cand]:
    out: list[Cand] = []
    at = text.find("@")
    while at >= 0:
        # Same as _LOCAL_RE.search(text, lo, at): the longest run of local-part
        # characters ending at "@" (or, as "$" allows, just before a newline
        # right before it), at most 64 long. rstrip finds it in C.
        lo = at - 64 if at > 64 else 0
        window = text[lo:at]
        end = at
        if window.endswith("\n"):
            window, end = window[:-1], at - 1
        start = lo + len(window.rstrip(_LOCAL_CHARS))
        domain = _DOMAIN_RE.match(text, at + 1) if start < end else None
        if domain:
            before = text[start - 1] if start else " "
            if (text[start].isascii() and text[start].isalnum() and text[at - 1] != "."
                    and not (before.isalnum() or before in "_._%+-")):
                out.append((start, domain.end(), EMAIL_ADDRESS, 0.95))
        at = text.find("@", at + 1)
    return out


# ---------------------------------------------------------------- cards
# Card number shapes as digit-group lengths, one character per group ("4444" for 4-4-4-4).
_CARD_SHAPES = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 4, 2),
                (4, 4, 4, 4, 1), (4, 4, 4, 3), (4, 4, 4, 2), (4, 4, 4, 1)}
_CARD_SHAPE_STRS = frozenset("".join(chr(48 + n) for n in shape) for shape in _CARD_SHAPES)
# Where a card can be, on the class string (shadow.py): 14 or more digits, groups joined by
# up to three separators or line breaks. On the text itself where there is no class string.
# A match never starts right after a digit (one would start there too, or the match before
# it would have taken that digit), so "(?<!dd)" drops those starts before the costly lookahead.
_CLASS_CARD_RE = re.compile(rb"d(?<!dd)(?=[dsn]{12})(?:[sn]{0,3}d){13}d*(?:[sn]{1,3}d+)*")
_CARD_REGION_RE = re.compile(r"\d(?:[ .()/\-\n\r\t]{0,3}\d){13,}")
_GROUP_RE = re.compile(r"\d+")
# Between two groups of one card: any run of spaces, dots, dashes and line breaks.
_CARD_SEP_RE = re.compile(r"[ .\-\n\r\t]{1,3}")
_CARD_SEP_CHARS = " .-\n\r\t"
# Text before a digit group that makes it part of an IBAN-shaped token ("DE89 3704 "):
# the digits of an IBAN are never a card, valid IBAN or not.
# One character per repeat, so the match is linear in the window (no nested quantifiers).
# The first capital is matched before the lookbehind, so the search skips in C to capitals.
_IBAN_HEAD_RE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9])* ?$")
_IBAN_HEAD_CHARS_RE = re.compile(r"[A-Z\d ]*")  # every character an _IBAN_HEAD_RE match holds


def iban_head_before(text: str, start: int) -> bool:
    """``_IBAN_HEAD_RE.search(text, max(0, start - 40), start) is not None``, searched only
    from where the run of capitals, digits and spaces before ``start`` begins (read backwards
    in C): a match holds nothing else, and its "$" may stand before one final line break."""
    lo = start - 40 if start > 40 else 0
    end = start - 1 if start > lo and text[start - 1] == "\n" else start
    return _IBAN_HEAD_RE.search(text, end - _IBAN_HEAD_CHARS_RE.match(text[lo:end][::-1]).end(), start) is not None

# A digit d at a doubled Luhn position counts as the digit sum of 2 * d.
_LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")


def luhn_ok(digits: str) -> bool:
    """The Luhn check. ASCII digits are summed in C through a translate table; other decimal
    digits (as folding leaves them) go digit by digit."""
    if digits.isascii() and digits.isdigit():
        doubled = digits[-2::-2].translate(_LUHN_DOUBLE)
        return (sum(digits[-1::-2].encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10 == 0
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_ok(d: str) -> bool:
    """True if the digit string has a length/IIN combination of a major network."""
    if d and d[0] in "01789":  # no network starts so (the int() tests below agree)
        return False
    n = len(d)
    if d[0] == "4":  # Visa (13-digit Visa is excluded: collides with EAN-13)
        return n in (16, 19)
    p2, p4, p6 = int(d[:2]), int(d[:4]), int(d[:6])
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # Amex
        return n == 15
    if 2200 <= p4 <= 2204:  # Mir
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= p6 // 1000 <= 305 or p2 in (36, 38, 39):  # Diners
        return 14 <= n <= 19
    if p4 == 6011 or 644 <= p6 // 1000 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:
        return 16 <= n <= 19  # Discover
    if p2 == 62:  # UnionPay
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 69:  # Maestro
        return 16 <= n <= 19
    return False


# Every card span passes _valid_card: a text with fewer digits than this holds no card.
CARD_MIN_DIGITS = 14


def _valid_card(d: str) -> bool:
    return CARD_MIN_DIGITS <= len(d) <= 19 and card_brand_ok(d) and luhn_ok(d)


def may_hold_card(text: str) -> bool:
    """False only where scan_cards(text) surely finds nothing: fewer than
    CARD_MIN_DIGITS digits (str.isdigit() holds for every digit a pattern's \\d matches)."""
    if len(text) < CARD_MIN_DIGITS:
        return False
    if text.isascii():
        return len(text.translate(_ASCII_NON_DIGITS)) >= CARD_MIN_DIGITS
    return sum(c.isdigit() for c in text) >= CARD_MIN_DIGITS


_ASCII_NON_DIGITS = translate_table(str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isdigit())))


# Cheap first pass: a run with at least 7 digits and short separators.
_DIGIT_HINT_RE = re.compile(r"\d(?:[ .()\-/]{0,3}\d){6,}")


NON_DIGIT_RE = re.compile(r"\D+")


# _DIGIT_HINT_RE on the class string (see shadow.py): it starts with a literal,
# and the lookahead drops short numbers before the costly repeat is tried.
# Written as rb"d(?:s{0,3}d){6,}", but past the first seven digits the run is
# extended a digit group at a time (d* and s{1,3}d+): the same greedy match,
# with one costly group repeat per separator instead of one per digit.
_CLASS_RUN_RE = re.compile(rb"d(?=[ds]{6})(?:s{0,3}d){6}d*(?:s{1,3}d+)*")


def digit_runs(text: str, cls: bytes | None = None) -> list[tuple[int, int]]:
    """Runs of >= 7 digits with short separators: the only places a card or
    phone number can be. One scan shared by both detectors.

    ``cls`` is ``shadow.classes(text)`` when the caller already has it.
    """
    if cls is None:
        cls = classes(text)
        if cls is None:
            return [m.span() for m in _DIGIT_HINT_RE.finditer(text)]
    return [m.span() for m in _CLASS_RUN_RE.finditer(cls)]


def card_regions(text: str, cls: bytes | None = None) -> list[tuple[int, int]]:
    """Runs of 14 or more digits in groups joined by up to three separators or line breaks."""
    if cls is None:
        cls = classes(text)
    if cls is None:
        return [m.span() for m in _CARD_REGION_RE.finditer(text)]
    return [m.span() for m in _CLASS_CARD_RE.finditer(cls)]


def scan_cards(text: str, cls: bytes | None = None) -> list[Cand]:
    """``cls`` is ``shadow.classes(text)`` when the caller already has it."""
    out: list[Cand] = []
    for lo, hi in card_regions(text, cls):
        chain: list[tuple[int, int]] = []
        for m in _GROUP_RE.finditer(text, lo, hi):
            # One separator character is the common joint; longer ones go to the regex.
            if chain and not (m.start() - chain[-1][1] == 1 and text[m.start() - 1] in _CARD_SEP_CHARS
                              or _CARD_SEP_RE.fullmatch(text, chain[-1][1], m.start())):
                out += _cards_in_chain(text, chain)
                chain = []
            chain.append(m.span())
        out += _cards_in_chain(text, chain)
    return out


def _free_start(text: str, start: int) -> bool:
    """Nothing glues the digit at ``start`` to a token before it."""
    if start == 0:
        return True
    before = text[start - 1]
    if before.isalnum() or before in "_,/":
        return False
    if before in ".-" and start > 1 and text[start - 2].isdigit():
        return False  # a dotted or dashed number that starts earlier
    return not iban_head_before(text, start)


def _free_end(text: str, end: int) -> bool:
    if end == len(text):
        return True
    after = text[end]
    return not (after.isalnum() or after == "_" or (after in ".,/-" and text[end + 1:end + 2].isdigit()))


def _cards_in_chain(text: str, groups: list[tuple[int, int]]) -> list[Cand]:
    """Cards among consecutive digit groups: one group of 14-19 digits, or a window of
    groups in a card shape (a card may sit next to other numbers)."""
    out: list[Cand] = []
    shape = "".join([chr(48 + b - a) if b - a < 30 else "~" for a, b in groups])
    ng, i = len(groups), 0
    while i < ng:
        a, b = groups[i]
        found = None
        if 14 <= b - a <= 19 and _valid_card(text[a:b]):
            found = i + 1
        elif shape[i] == "4":
            for k in (5, 4, 3):  # the longest window first
                if i + k <= ng and shape[i:i + k] in _CARD_SHAPE_STRS:
                    digits = "".join([text[x:y] for x, y in groups[i:i + k]])
                    if _valid_card(digits):
                        found = i + k
                        break
        if found is not None:
            start, end = a, groups[found - 1][1]
            if _free_start(text, start) and _free_end(text, end):
                out.append((start, end, CREDIT_CARD, 1.0))
                i = found
                continue
        i += 1
    return out


# ---------------------------------------------------------------- IBAN
_IBAN_RE = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}"
    r"(?:(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?|[A-Z0-9]{11,30})(?![A-Za-z0-9])"
)


def _bban_formats() -> Mapping[str, re.Pattern[str]] | None:
    """Per-country BBAN structure from python-stdnum's IBAN registry, compiled once.

    Validating with a dict lookup avoids ``iban.is_valid``'s registry lookup on every call;
    ``None`` means fall back to ``iban.is_valid``.
    """
    classes = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Za-z0-9]"}
    try:
        formats = {}
        for entry in numdb.get("iban").prefixes:
            country, props = entry[1], entry[3]
            parts = re.findall(r"(\d+)!?([nac])", props.get("bban", ""))
            if parts:
                formats[country] = re.compile("".join(f"{classes[k]}{{{n}}}" for n, k in parts))
        return MappingProxyType(formats) if len(formats) > 50 else None
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


_BBAN = _bban_formats()
# Full IBAN length per country: 4 + the fixed BBAN length of its format.
_IBAN_LENGTHS = ({country: 4 + sum(int(n) for n in re.findall(r"\{(\d+)\}", fmt.pattern))
                  for country, fmt in _BBAN.items()} if _BBAN is not None else {})


def iban_valid(cand: str) -> bool:
    """mod-97 and the per-country BBAN format (length and character classes).

    Equals ``stdnum.iban.is_valid(x, check_country=False)``; stdnum's extra
    national account checks (BE, ES, ME, NO only) are skipped because each
    re-runs the full, slow validation.
    """
    compact = cand.replace(" ", "")
    if len(compact) < 15 or not _mod97_ok(compact):
        return False
    if _BBAN is None:
        try:
            _iban.validate(compact, check_country=False)
        except ValueError:
            return False
        return True
    fmt = _BBAN.get(compact[:2])
    return fmt is not None and fmt.fullmatch(compact[4:]) is not None


# A..Z -> 10..35 for the mod-97 check; digits (any Unicode decimal digit,
# which int() reads the same way as int(c, 36)) stay as they are.
_IBAN_LETTERS = translate_table(str.maketrans({chr(65 + i): str(10 + i) for i in range(26)}))


def _mod97_ok(compact: str) -> bool:
    moved = compact[4:] + compact[:4]
    if not moved.isascii() or not moved.isalnum() or not moved.upper() == moved:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    return int(moved.translate(_IBAN_LETTERS)) % 97 == 1


# Where _IBAN_RE can start, in the class string (shadow.py): two capitals, two digits.
_CLASS_IBAN_RE = re.compile(rb"UUdd")


def _iban_matches(text: str, cls: bytes | None) -> list[re.Match[str]]:
    """``list(_IBAN_RE.finditer(text))``, trying the pattern only where the class
    string allows it to start."""
    if cls is None:
        return list(_IBAN_RE.finditer(text))
    out, last = [], 0
    for head in _CLASS_IBAN_RE.finditer(cls):
        i = head.start()
        if i >= last:
            m = _IBAN_RE.match(text, i)
            if m:
                out.append(m)
                last = m.end()
    return out


def scan_ibans(text: str, cls: bytes | None = None) -> list[Cand]:
    """``cls`` is ``shadow.classes(text)`` when the caller already has it."""
    out: list[Cand] = []
    if cls is None:
        cls = classes(text)
    for m in _iban_matches(text, cls):
        cand = m.group()
        # The pattern may have swallowed a following word; shrink group by group
        # (cutting at spaces from index 15 on).
        want = None if _BBAN is None else _IBAN_LENGTHS.get(cand[:2])
        if want is None and _BBAN is not None:
            continue  # unknown country: iban_valid() is False for every cut
        cut = len(cand)
        while cut >= 0:
            # Only a cut with the country's length can pass (the BBAN formats are fixed-length).
            if (want is None or cut - cand.count(" ", 0, cut) == want) and iban_valid(cand[:cut]):
                out.append((m.start(), m.start() + cut, IBAN_CODE, 1.0))
                break
            cut = cand.rfind(" ", 15, cut)
    return out


# ---------------------------------------------------------------- IP
_IPV4_RE = re.compile(r"\d(?<![\w.:-]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w-]|\.\d)")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f:]*:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
    r"(?![\w:]|\.\d)"
)
_IPV4_HINT_RE = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d{1,3}")  # literal-led: fast to scan for
_IPV6_HINT_RE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_VERSION_CTX_RE = re.compile(r"(?i)\b(?:version|ver\.?|release|build|firmware|v)\s*$")


def scan_ips(text: str) -> list[Cand]:
    out: list[Cand] = []
    if "." in text:
        for hint in _IPV4_HINT_RE.finditer(text):
            start = hint.start()
            while start > 0 and start > hint.start() - 3 and text[start - 1].isdigit():
                start -= 1
            m = _IPV4_RE.match(text, start)
            if m is None:
                continue
            if _VERSION_CTX_RE.search(text, max(0, m.start() - 12), m.start()):
                continue
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            out.append((m.start(), m.end(), IP_ADDRESS, 0.95))
    if ":" not in text:
        return out
    seen: set[int] = set()
    for hint in _IPV6_HINT_RE.finditer(text):
        # An address (<= 45 chars) containing the hint lies inside this window.
        lo, hi = max(0, hint.start() - 45), min(len(text), hint.end() + 45)
        for m in _IPV6_RE.finditer(text, lo, hi):
            cand = m.group()
            if m.start() in seen or (m.end() == hi < len(text)) or not any(c.isdigit() for c in cand):
                continue
            if "::" not in cand and "." not in cand and cand.count(":") != 7:
                continue  # IPv6Address would refuse it: without "::" it needs exactly 8 parts
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            seen.add(m.start())
            out.append((m.start(), m.end(), IP_ADDRESS, 0.95))
    return out
