"""A one-byte-per-character class string of a text, for fast scans.

The regex engine scans for a pattern that starts with a character class far more slowly
than for one that starts with a literal. In the
class string every character of the text becomes one class letter, at the same
index, so scans for digit runs, currency codes and IBAN starts become scans for
literals:

    d  ASCII digit            s  one of `` .()-/`` (digit-run separators)
    U  ASCII capital letter   a  any other Latin-1 letter
    n  line break or tab      x  anything else (including every character beyond Latin-1)

``\\d`` in a str pattern also matches decimal digits beyond Latin-1 (Arabic-Indic
and so on), which the class string shows as ``x``; where the text holds one,
``classes()`` returns None and callers scan the text itself.
"""
from __future__ import annotations

DIGIT, SEP, UPPER, ALPHA, BREAK, OTHER = b"d", b"s", b"U", b"a", b"n", b"x"


def _table() -> bytes:
    table = bytearray(OTHER * 256)
    for code in range(256):
        char = chr(code)
        if "0" <= char <= "9":
            table[code] = DIGIT[0]
        elif char in " .()-/":
            table[code] = SEP[0]
        elif char in "\n\r\t":
            table[code] = BREAK[0]
        elif "A" <= char <= "Z":
            table[code] = UPPER[0]
        elif char.isalpha():
            table[code] = ALPHA[0]
    return bytes(table)


_TABLE = _table()


def classes(text: str) -> bytes | None:
    """The class string of ``text``, or None if it holds a decimal digit beyond Latin-1."""
    return classes_and_lower(text, lower=False)[0]


# Latin-1 bytes whose character lower() leaves alone, ASCII included (bytes.lower()
# handles ASCII): deleting them leaves only the capitals lower() changes (À-Þ).
_NOT_LATIN1_CAPITALS = bytes(b for b in range(256) if b < 128 or chr(b).lower() == chr(b))


def classes_and_lower(text: str, lower: bool = True) -> tuple[bytes | None, str]:
    """``(classes(text), text.lower())`` (``""`` for the latter unless ``lower``).

    Where lower() changes nothing but ASCII capitals, lower-casing the UTF-8
    bytes gives the same string at under half the cost of str.lower() on
    non-ASCII text; the scan for digits beyond Latin-1 tells which case holds.
    """
    if text.isascii():
        return text.encode("ascii").translate(_TABLE), text.lower() if lower else ""
    # Latin-1 bytes, one per character; every character beyond Latin-1 becomes "?".
    shade = text.encode("latin-1", "replace")
    has_wide_digit = False
    plain = lower and not shade.translate(None, _NOT_LATIN1_CAPITALS)
    i = shade.find(b"?")
    while i >= 0:  # "?" or a replaced character: a digit? one that lower() changes?
        char = text[i]
        if char.isdecimal():
            has_wide_digit = True
        elif plain and (char.lower() != char or "\ud800" <= char <= "\udfff"):
            plain = False  # (a lone surrogate would not survive the UTF-8 round trip)
        i = shade.find(b"?", i + 1)
    cls = None if has_wide_digit else shade.translate(_TABLE)
    if not lower:
        return cls, ""
    return cls, text.encode("utf-8").lower().decode("utf-8") if plain else text.lower()


def translate_table(table: dict[int, int | str | None]) -> dict[int, int | str | None]:
    """A str.translate ``table`` with every ASCII character it leaves alone mapped
    to itself: the same translation, but faster. translate() looks every distinct
    character up in the table, and a missing key costs a KeyError raised and
    cleared inside it (about as much as translating a short string)."""
    return {**{code: code for code in range(128)}, **table}
