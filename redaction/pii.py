"""Detectors for contact and financial identifiers: e-mail, phone, card, IBAN, IP.

Every detector runs a cheap precompiled regex first and only calls the
validator (Luhn, mod-97, ``ipaddress``, ``phonenumbers``) on its candidates.
"""
from __future__ import annotations

import ipaddress
import re

import phonenumbers
from stdnum import iban as _iban

from .spans import CREDIT_CARD, EMAIL_ADDRESS, IBAN_CODE, IP_ADDRESS, PHONE_NUMBER, Span

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-]|\.\w)"
)


def find_emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [Span(m.start(), m.end(), EMAIL_ADDRESS, 0.95) for m in _EMAIL_RE.finditer(text)]


# ---------------------------------------------------------------- cards
# A run of digit groups joined by single spaces or dashes.
_DIGIT_RUN_RE = re.compile(r"(?<![\w.,/-])\d+(?:[ -]\d+)*(?![\w]|[.,/-]\d)")
_CARD_SHAPES = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 4, 2),
                (4, 4, 4, 4, 1), (4, 4, 4, 3), (4, 4, 4, 2), (4, 4, 4, 1)}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_ok(d: str) -> bool:
    """True if the digit string has a length/IIN combination of a major network."""
    n = len(d)
    p2, p4, p6 = int(d[:2]), int(d[:4]), int(d[:6])
    if d[0] == "4":  # Visa (13-digit Visa is excluded: collides with EAN-13)
        return n in (16, 19)
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


def _valid_card(d: str) -> bool:
    return 14 <= len(d) <= 19 and card_brand_ok(d) and luhn_ok(d)


def find_cards(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _DIGIT_RUN_RE.finditer(text):
        if m.end() - m.start() < 14:
            continue
        run = m.group()
        groups = re.split(r"[ -]", run)
        if len(groups) == 1:
            if _valid_card(run):
                out.append(Span(m.start(), m.end(), CREDIT_CARD, 1.0))
            continue
        if len({c for c in run if not c.isdigit()}) > 1:
            continue  # mixed separators: not a card layout
        # Try windows of consecutive groups (a card may sit next to other numbers).
        offsets, pos = [], m.start()
        for g in groups:
            offsets.append(pos)
            pos += len(g) + 1
        i = 0
        while i < len(groups):
            best = None
            for j in range(min(len(groups), i + 5), i, -1):
                shape = tuple(len(g) for g in groups[i:j])
                if shape in _CARD_SHAPES and _valid_card("".join(groups[i:j])):
                    best = j
                    break
            if best is None:
                i += 1
                continue
            out.append(Span(offsets[i], offsets[best - 1] + len(groups[best - 1]), CREDIT_CARD, 1.0))
            i = best
    return out


# ---------------------------------------------------------------- IBAN
_IBAN_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}"
    r"(?:(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?|[A-Z0-9]{11,30})(?![A-Za-z0-9])"
)


def find_ibans(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _IBAN_RE.finditer(text):
        cand = m.group()
        # The pattern may have swallowed a following word; shrink group by group.
        cuts = [len(cand)] + [i for i in range(len(cand) - 1, 14, -1) if cand[i] == " "]
        for cut in cuts:
            if _iban.is_valid(cand[:cut]):
                out.append(Span(m.start(), m.start() + cut, IBAN_CODE, 1.0))
                break
    return out


# ---------------------------------------------------------------- IP
_IPV4_RE = re.compile(r"(?<![\w.:-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f:]*:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
    r"(?![\w:]|\.\d)"
)
_VERSION_CTX_RE = re.compile(r"(?i)\b(?:version|ver\.?|release|build|firmware|v)\s*$")


def find_ips(text: str) -> list[Span]:
    out: list[Span] = []
    if "." in text:
        for m in _IPV4_RE.finditer(text):
            if _VERSION_CTX_RE.search(text, max(0, m.start() - 12), m.start()):
                continue
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            out.append(Span(m.start(), m.end(), IP_ADDRESS, 0.95))
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6_RE.finditer(text):
            cand = m.group()
            if not any(c.isdigit() for c in cand) or cand.count(":") < 2:
                continue
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            out.append(Span(m.start(), m.end(), IP_ADDRESS, 0.95))
    return out


# ---------------------------------------------------------------- phone
# Candidates: optional +/00 prefix, 7-15 digits, single separators or parens.
_PHONE_RE = re.compile(
    r"(?<![\w+#/.,$\u00a3\u20ac-])(?:\+|00)?(?:\(\d{1,5}\)|\d+)"
    r"(?:(?:[ .\-/]|(?<=\)))\(?\d+\)?){0,7}(?![\w]|[.,:/-]?\d)"
)
_PHONE_CTX_RE = re.compile(
    r"(?i)\b(?:tel|phone|call|mobile|mob|cell|fax|ph|whatsapp|direct|dial|sms|text|reach|contact|number|no)\b\W{0,4}$"
)


def find_phones(text: str, region: str = "US") -> list[Span]:
    out: list[Span] = []
    for m in _PHONE_RE.finditer(text):
        start, cand = m.start(), m.group()
        # Drop a parenthesis that belongs to the surrounding prose.
        if cand.endswith(")") and cand.count(")") > cand.count("("):
            cand = cand[:-1]
        if cand.startswith("(") and cand.count("(") > cand.count(")"):
            cand, start = cand[1:], start + 1
        digits = sum(c.isdigit() for c in cand)
        if not 7 <= digits <= 15:
            continue
        international = cand[0] == "+" or cand.startswith("00")
        if not international and digits == len(cand):
            # A bare digit run is only a phone number with a phone-ish cue before it.
            if not _PHONE_CTX_RE.search(text, max(0, start - 24), start):
                continue
        try:
            num = phonenumbers.parse(cand, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            out.append(Span(start, start + len(cand), PHONE_NUMBER, 0.85))
    return out
