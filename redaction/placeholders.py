"""Per-request placeholder allocation: ``[LABEL_N]`` <-> original value."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping

from .spans import (
    COMMERCIAL_TERM,
    CREDIT_CARD,
    EMAIL_ADDRESS,
    IBAN_CODE,
    IP_ADDRESS,
    LITERAL,
    PHONE_NUMBER,
    PRICE,
    SECRET,
    URL_CREDENTIALS,
)

LABELS: dict[str, str] = {
    EMAIL_ADDRESS: "EMAIL",
    PHONE_NUMBER: "PHONE",
    CREDIT_CARD: "CARD",
    IBAN_CODE: "IBAN",
    IP_ADDRESS: "IP",
    URL_CREDENTIALS: "CREDENTIALS",
    SECRET: "SECRET",
    PRICE: "PRICE",
    COMMERCIAL_TERM: "TERM",
    LITERAL: "LITERAL",
}
# Anything of placeholder shape, known or not. Input text matching this is
# escaped by redact() so the model only ever sees placeholders we issued.
PLACEHOLDER_RE = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


# ASCII fast paths for the identity keys: on ASCII text, str.isdigit/isalnum are
# exactly 0-9 / letters and digits, so deleting the other ASCII characters
# gives the same key as the per-character filter. bytes.translate deletes in C;
# str.translate leaves its fast path for every character it deletes.
_ASCII_NON_DIGITS = bytes(c for c in range(128) if not chr(c).isdigit())
_ASCII_NON_ALNUM = bytes(c for c in range(128) if not chr(c).isalnum())


def _digit_key(value: str) -> str:
    if value.isascii():
        return value.encode("ascii").translate(None, _ASCII_NON_DIGITS).decode("ascii")
    return "".join(c for c in value if c.isdigit())


def _iban_key(value: str) -> str:
    if value.isascii():
        return value.encode("ascii").translate(None, _ASCII_NON_ALNUM).decode("ascii").upper()
    return "".join(c for c in value if c.isalnum()).upper()


def _term_key(value: str) -> str:
    return " ".join(value.casefold().split())


# type -> key function; None: the exact text is the key; types not listed
# (sensitive terms) use _term_key.
_KEYS = {t: None for t in LABELS}
_KEYS.update({CREDIT_CARD: _digit_key, PHONE_NUMBER: _digit_key, IBAN_CODE: _iban_key,
              EMAIL_ADDRESS: str.lower, IP_ADDRESS: str.lower})

# The first placeholders of each built-in label, formatted once.
_PRENUMBERED = 128
_NUMBERED = {label: tuple(f"[{label}_{n}]" for n in range(_PRENUMBERED)) for label in LABELS.values()}


class PlaceholderMap(Mapping[str, str]):
    """Mutable per-request map placeholder -> original value.

    Share one instance across all fields of a request so numbering and
    identity are consistent. Not thread-safe; one per request. Its repr and
    str show only sizes, never values.
    """

    __slots__ = ("_values", "_types", "_by_key", "_next")

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._next: dict[str, int] = {}

    def placeholder_for(self, type_: str, value: str) -> str:
        """Return the placeholder for (type, value), allocating one if new."""
        norm = _KEYS.get(type_, _term_key)
        key = (type_, value if norm is None else norm(value))
        found = self._by_key.get(key)
        if found is not None:
            return found
        return self._allocate(key, value)

    def _allocate(self, key: tuple[str, str], value: str) -> str:
        type_ = key[0]
        label = LABELS.get(type_, type_)
        n = self._next.get(label, 0) + 1
        self._next[label] = n
        numbered = _NUMBERED.get(label)
        placeholder = numbered[n] if numbered is not None and n < _PRENUMBERED else f"[{label}_{n}]"
        self._by_key[key] = placeholder
        self._values[placeholder] = value
        self._types[placeholder] = type_
        return placeholder

    def substitute(self, text: str, spans) -> tuple[str, dict[str, int]]:
        """``text`` with each ``(start, end, type, score)`` span (sorted, disjoint) replaced
        by its placeholder, and the count of spans per type (a Counter, in the order each
        type first occurs): :meth:`placeholder_for` per span, without a method call for each."""
        parts: list[str] = []
        by_key, key_of, allocate = self._by_key, _KEYS.get, self._allocate
        append = parts.append
        counts: dict[str, int] = {}
        pos = 0
        for start, end, type_, _ in spans:
            value = text[start:end]
            norm = key_of(type_, _term_key)
            key = (type_, value if norm is None else norm(value))
            placeholder = by_key.get(key)
            if placeholder is None:
                placeholder = allocate(key, value)
            append(text[pos:start])
            append(placeholder)
            pos = end
            counts[type_] = counts.get(type_, 0) + 1
        append(text[pos:])
        return "".join(parts), Counter(counts)

    def type_of(self, placeholder: str) -> str | None:
        return self._types.get(placeholder)

    def __getitem__(self, placeholder: str) -> str:
        return self._values[placeholder]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PlaceholderMap(<{len(self._values)} entries>)"

    __str__ = __repr__
