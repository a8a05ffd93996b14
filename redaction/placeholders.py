"""Per-request placeholder allocation: ``[LABEL_N]`` <-> original value."""
from __future__ import annotations

import re
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


def label_for(type_: str) -> str:
    """Placeholder label for a type; custom term types use their own name."""
    return LABELS.get(type_, type_)


# ASCII fast paths for normalize(): on ASCII text, str.isdigit/isalnum are
# exactly 0-9 / letters and digits, so deleting the other ASCII characters
# gives the same key as the per-character filter.
_ASCII_NON_DIGITS = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isdigit()))
_ASCII_NON_ALNUM = str.maketrans("", "", "".join(chr(c) for c in range(128) if not chr(c).isalnum()))
_DIGIT_KEY_TYPES = frozenset({CREDIT_CARD, PHONE_NUMBER})


def normalize(type_: str, value: str) -> str:
    """Identity key: same key => same placeholder within one request."""
    if type_ in _DIGIT_KEY_TYPES:
        if value.isascii():
            return value.translate(_ASCII_NON_DIGITS)
        return "".join(c for c in value if c.isdigit())
    if type_ == IBAN_CODE:
        if value.isascii():
            return value.translate(_ASCII_NON_ALNUM).upper()
        return "".join(c for c in value if c.isalnum()).upper()
    if type_ in (EMAIL_ADDRESS, IP_ADDRESS):
        return value.lower()
    if type_ in LABELS:  # secrets, credentials, prices, terms: exact text
        return value
    return " ".join(value.casefold().split())  # sensitive terms


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
        key = (type_, normalize(type_, value))
        found = self._by_key.get(key)
        if found is not None:
            return found
        label = label_for(type_)
        n = self._next.get(label, 0) + 1
        self._next[label] = n
        placeholder = f"[{label}_{n}]"
        self._by_key[key] = placeholder
        self._values[placeholder] = value
        self._types[placeholder] = type_
        return placeholder

    def type_of(self, placeholder: str) -> str | None:
        return self._types.get(placeholder)

    @property
    def max_placeholder_len(self) -> int:
        return max((len(p) for p in self._values), default=0)

    def __getitem__(self, placeholder: str) -> str:
        return self._values[placeholder]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PlaceholderMap(<{len(self._values)} entries>)"

    __str__ = __repr__
