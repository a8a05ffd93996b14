"""Detectors for credentials: SECRET values and URL_CREDENTIALS.

Spans cover the value only (never the ``password=`` / ``Bearer`` label).
For URL_CREDENTIALS the span is the ``user:password`` userinfo part.
"""
from __future__ import annotations

import base64
import binascii
import json
import re

from .spans import SECRET, URL_CREDENTIALS, Span

# Regexes start with a literal or character class so the engine can skip
# ahead quickly; the "not preceded by a token character" check is done in
# Python on the (few) matches instead of with a leading lookbehind.
_AWS_KEY_ID_RE = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_AWS_SECRET_RE = re.compile(
    r"(?:aws_?secret_?(?:access_?)?key|secretaccesskey)[\"']?\s*[:=]\s*[\"']?"
    r"([a-z0-9/+]{40})(?![a-z0-9/+=])"
)  # run on lower-cased text; the value is sliced from the original
_PREFIXED_RE = re.compile(
    r"(?:sk_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|rk_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[baprse]-[A-Za-z0-9-]{10,}"
    r"|sk-ant-[A-Za-z0-9_-]{20,}"
    r"|sk-proj-[A-Za-z0-9_-]{20,}"
    r"|sk-[A-Za-z0-9]{32,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r")(?![A-Za-z0-9_-])"
)
_JWT_RE = re.compile(r"(eyJ[A-Za-z0-9_-]{8,})\.([A-Za-z0-9_-]{4,})\.([A-Za-z0-9_-]*)(?![A-Za-z0-9_-])")
_BEARER_RE = re.compile(r"[Bb]earer[ \t]+([A-Za-z0-9\-._~+/]{12,}=*)(?![A-Za-z0-9\-._~+/=])")
# key (e.g. the PASSWORD in DB_PASSWORD), optional quote, separator, optional quote, value.
# Run on lower-cased text for speed; the value is sliced from the original.
_KV_RE = re.compile(
    r"(?:password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|client[_-]?secret|token|auth[_-]?token|access[_-]?token|refresh[_-]?token)"
    r"[\"']?[ \t]*([:=])[ \t]*([\"']?)([^\s\"'`,;&]+)"
)
_KV_RE_I = re.compile(_KV_RE.pattern, re.IGNORECASE)
_AWS_SECRET_RE_I = re.compile(_AWS_SECRET_RE.pattern, re.IGNORECASE)
_URL_CRED_RE = re.compile(r"://([^\s:/?#@\[\]]*:[^\s/?#@]+)@[A-Za-z0-9.\[\]-]+")
_PREFIX_HINTS = ("sk_", "rk_", "sk-", "gh", "github_pat_", "glpat-", "xox", "AIza")
_KV_STEMS = ("pass", "pwd", "secret", "key", "token")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_KV_STOP = frozenset(
    "none null nil true false empty required optional redacted hidden xxx xxxx xxxxxx changeme "
    "your_password your-password yourpassword example placeholder undefined string".split()
)


def _jwt_header_ok(segment: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def _tokenish(value: str) -> bool:
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
    return has_alpha and (has_digit or (mixed and len(value) >= 20))


def _kv_value_ok(sep: str, quoted: str, value: str) -> bool:
    if len(value) < 4 or value.lower() in _KV_STOP:
        return False
    if value[0] in "$<{[%*(" or value.startswith(("os.", "env", "process.", "getenv")):
        return False  # a reference to a secret, not the secret itself
    if set(value) <= set("*x.-_"):
        return False
    if sep == ":" and not quoted and value.isalpha() and value.islower():
        return False  # prose: "password: required", "token: see vault"
    return True


def _starts_token(text: str, i: int) -> bool:
    return i == 0 or text[i - 1] not in _TOKEN_CHARS


def _kv_matches(kv: re.Pattern[str], hay: str, low: str) -> list[re.Match[str]]:
    """Key=value matches, tried only at word starts shortly before a key stem
    (much cheaper than scanning every position of the text)."""
    starts: set[int] = set()
    for stem in _KV_STEMS:
        i = low.find(stem)
        while i >= 0:
            for j in range(max(0, i - 8), i + 1):
                if j == 0 or not low[j - 1].isalnum():
                    starts.add(j)
            i = low.find(stem, i + 1)
    out, last = [], -1
    for j in sorted(starts):
        if j < last:
            continue
        m = kv.match(hay, j)
        if m:
            out.append(m)
            last = m.end()
    return out


def _find_all(hay: str, needle: str) -> list[int]:
    out = []
    i = hay.find(needle)
    while i >= 0:
        out.append(i)
        i = hay.find(needle, i + 1)
    return out


def _matches_at(regex: re.Pattern[str], text: str, starts: list[int]) -> list[re.Match[str]]:
    """``list(regex.finditer(text))`` for a case-sensitive regex that can only
    match at ``starts`` (sorted): str.find for its literal heads is much cheaper
    than a regex scan that starts with a character class."""
    out, last = [], 0
    for i in starts:
        if i < last:
            continue
        m = regex.match(text, i)
        if m:
            out.append(m)
            last = m.end() if m.end() > i else i + 1
    return out


def find_secrets(text: str, *, low: str | None = None) -> list[Span]:
    """``low`` is ``text.lower()`` when the caller already has it."""
    out: list[Span] = []
    for m in _AWS_KEY_ID_RE.finditer(text):
        if _starts_token(text, m.start()):
            out.append(Span(m.start(), m.end(), SECRET, 1.0))
    if any(h in text for h in _PREFIX_HINTS):
        # Every branch of _PREFIXED_RE starts with one of _PREFIX_HINTS
        # ("gh" also covers "github_pat_"), so it can only match where one occurs.
        heads = sorted({i for h in _PREFIX_HINTS for i in _find_all(text, h)})
        for m in _matches_at(_PREFIXED_RE, text, heads):
            if _starts_token(text, m.start()):
                out.append(Span(m.start(), m.end(), SECRET, 0.95))
    if "eyJ" in text:
        for m in _JWT_RE.finditer(text):
            if _starts_token(text, m.start()) and _jwt_header_ok(m.group(1)):
                out.append(Span(m.start(), m.end(), SECRET, 1.0))
    if low is None:
        low = text.lower()
    if "bearer" in low:
        heads = sorted(_find_all(text, "Bearer") + _find_all(text, "bearer"))  # _BEARER_RE's heads
        for m in _matches_at(_BEARER_RE, text, heads):
            if (m.start() == 0 or not text[m.start() - 1].isalpha()) and _tokenish(m.group(1)):
                out.append(Span(m.start(1), m.end(1), SECRET, 0.9))
    same = len(low) == len(text)  # lower() can change length for a few characters
    kv, aws, hay = (_KV_RE, _AWS_SECRET_RE, low) if same else (_KV_RE_I, _AWS_SECRET_RE_I, text)
    if "secret" in low and ("aws" in low or "secretaccesskey" in low):
        for m in aws.finditer(hay):
            out.append(Span(m.start(1), m.end(1), SECRET, 0.95))
    for m in _kv_matches(kv, hay, low):
        sep, quoted = m.group(1), m.group(2)
        value = text[m.start(3):m.end(3)]
        if not quoted:
            value = value.rstrip(".)]}>")  # sentence punctuation, not part of the value
        if _kv_value_ok(sep, quoted, value):
            out.append(Span(m.start(3), m.start(3) + len(value), SECRET, 0.8))
    return out


def find_url_credentials(text: str) -> list[Span]:
    if "://" not in text:
        return []
    return [Span(m.start(1), m.end(1), URL_CREDENTIALS, 1.0) for m in _URL_CRED_RE.finditer(text)]
