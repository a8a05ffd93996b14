"""A one-byte-per-character class string of a text, for fast scans.

The regex engine scans for a pattern that starts with a character class at
~60 machine instructions per character, but for a literal at a few. In the
class string every character of the text becomes one class letter, at the same
index, so scans for digit runs, currency codes and IBAN starts become scans for
literals:

    d  ASCII digit            s  one of `` .()-/`` (digit-run separators)
    U  ASCII capital letter   a  any other Latin-1 letter
    x  anything else (including every character beyond Latin-1)

``\\d`` in a str pattern also matches decimal digits beyond Latin-1 (Arabic-Indic
and so on), which the class string shows as ``x``; where the text holds one,
``classes()`` returns None and callers scan the text itself.
"""
from __future__ import annotations

DIGIT, SEP, UPPER, ALPHA, OTHER = b"d", b"s", b"U", b"a", b"x"


def _table() -> bytes:
    table = bytearray(OTHER * 256)
    for code in range(256):
        char = chr(code)
        if "0" <= char <= "9":
            table[code] = DIGIT[0]
        elif char in " .()-/":
            table[code] = SEP[0]
        elif "A" <= char <= "Z":
            table[code] = UPPER[0]
        elif char.isalpha():
            table[code] = ALPHA[0]
    return bytes(table)


_TABLE = _table()


def classes(text: str) -> bytes | None:
    """The class string of ``text``, or None if it holds a decimal digit beyond Latin-1."""
    # Latin-1 bytes, one per character; every character beyond Latin-1 becomes "?".
    shade = text.encode("latin-1", "replace")
    if shade.count(b"?") != text.count("?"):  # some characters were replaced: any digits?
        i = shade.find(b"?")
        while i >= 0:
            if text[i].isdecimal():
                return None
            i = shade.find(b"?", i + 1)
    return shade.translate(_TABLE)
