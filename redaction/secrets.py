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

_AWS_KEY_ID_RE = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_AWS_SECRET_RE = re.compile(
    r"(?i:aws_?secret_?(?:access_?)?key|secretaccesskey)[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_PREFIXED_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[baprse]-[A-Za-z0-9-]{10,}"
    r"|sk-ant-[A-Za-z0-9_-]{20,}"
    r"|sk-proj-[A-Za-z0-9_-]{20,}"
    r"|sk-[A-Za-z0-9]{32,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r")(?![A-Za-z0-9_-])"
)
_JWT_RE = re.compile(r"(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{8,})\.([A-Za-z0-9_-]{4,})\.([A-Za-z0-9_-]*)(?![A-Za-z0-9_-])")
_BEARER_RE = re.compile(r"(?<![A-Za-z])[Bb]earer[ \t]+([A-Za-z0-9\-._~+/]{12,}=*)(?![A-Za-z0-9\-._~+/=])")
# key (optionally prefixed, e.g. DB_PASSWORD), optional quote, separator, optional quote, value.
_KV_RE = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_.-])*"
    r"(?:password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|client[_-]?secret|token|auth[_-]?token|access[_-]?token|refresh[_-]?token))"
    r"[\"']?[ \t]*([:=])[ \t]*([\"']?)([^\s\"'`,;&]+)"
)
_URL_CRED_RE = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,20}://([^\s:/?#@\[\]]*:[^\s/?#@]+)@[A-Za-z0-9.\[\]-]+")
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


def find_secrets(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _AWS_KEY_ID_RE.finditer(text):
        out.append(Span(m.start(), m.end(), SECRET, 1.0))
    for m in _AWS_SECRET_RE.finditer(text):
        out.append(Span(m.start(1), m.end(1), SECRET, 0.95))
    for m in _PREFIXED_RE.finditer(text):
        out.append(Span(m.start(), m.end(), SECRET, 0.95))
    if "eyJ" in text:
        for m in _JWT_RE.finditer(text):
            if _jwt_header_ok(m.group(1)):
                out.append(Span(m.start(), m.end(), SECRET, 1.0))
    for m in _BEARER_RE.finditer(text):
        if _tokenish(m.group(1)):
            out.append(Span(m.start(1), m.end(1), SECRET, 0.9))
    for m in _KV_RE.finditer(text):
        sep, quoted, value = m.group(2), m.group(3), m.group(4)
        if not quoted:
            value = value.rstrip(".)]}>")  # sentence punctuation, not part of the value
        if _kv_value_ok(sep, quoted, value):
            out.append(Span(m.start(4), m.start(4) + len(value), SECRET, 0.8))
    return out


def find_url_credentials(text: str) -> list[Span]:
    if "://" not in text:
        return []
    return [Span(m.start(1), m.end(1), URL_CREDENTIALS, 1.0) for m in _URL_CRED_RE.finditer(text)]
