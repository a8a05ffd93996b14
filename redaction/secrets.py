"""Detectors for credentials: SECRET values and URL_CREDENTIALS.

Spans cover the value only (never the ``password=`` / ``Bearer`` label).
For URL_CREDENTIALS the span is the ``user:password`` userinfo part.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from functools import lru_cache
from re import _constants as _sre, _parser as _sre_parse

from .needles import Hits, find_all, trie_pattern
from .rules import SECRET_PROVIDERS, compiled
from .spans import SECRET, URL_CREDENTIALS, Cand

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
_KV_KEYS = (
    r"password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|client[_-]?secret|token|auth[_-]?token|access[_-]?token|refresh[_-]?token"
)
# A "&" belongs to the value ("Xy&181mp") unless a query parameter follows it ("&user=").
_AMP = r"&(?![\w.-]*=|amp;)"
_VALUE = rf"(?:[^\s\"'`,;&]|{_AMP})[^\s\"'`,;&]*(?:{_AMP}[^\s\"'`,;&]*)*"
_KV_RE = re.compile(rf"(?:{_KV_KEYS})[\"']?[ \t]*([:=])[ \t]*([\"']?)({_VALUE})")
_KV_RE_I = re.compile(_KV_RE.pattern, re.IGNORECASE)
_AWS_SECRET_RE_I = re.compile(_AWS_SECRET_RE.pattern, re.IGNORECASE)
# The password may hold a raw "#" (people paste them unencoded); not "/", "?" or "@".
_URL_CRED_RE = re.compile(r"://([^\s:/?#@\[\]]*:[^\s/?@]+)@[A-Za-z0-9.\[\]-]+")
# Every branch of _PREFIXED_RE starts with one of these.
_PREFIX_HINTS = ("sk_", "rk_", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "AIza")


def _prefix_groups(hints: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The hints grouped by their first two characters, each group under its longest
    common head ("sk" for sk_ and sk-): one str.find pass over the text per head and a
    startswith() per occurrence, instead of one pass per hint."""
    groups: dict[str, list[str]] = {}
    for hint in hints:
        groups.setdefault(hint[:2], []).append(hint)
    return tuple((os.path.commonprefix(group), tuple(group)) for group in groups.values())


_PREFIX_GROUPS = _prefix_groups(_PREFIX_HINTS)
_KV_STEMS = ("pass", "pwd", "secret", "key", "token")
# The keywords this module finds in the lower-cased text (besides the rules' secret cue
# stems): detect.py finds them all in one scan (needles.py).
_PREFIX_LOWER = tuple(tuple(hint.lower() for hint in hints) for _, hints in _PREFIX_GROUPS)
LOW_NEEDLES = (*_KV_STEMS, "bearer", "secret", "aws", "secretaccesskey", "eyj", *(h for group in _PREFIX_LOWER for h in group),
               *(hint.lower() for _, hint, _, _ in SECRET_PROVIDERS if len(hint) > 1))


def _stem_offsets() -> dict[str, tuple[int, ...]]:
    """stem -> every offset at which it occurs inside a key _KV_RE accepts."""
    keys = [k.replace("[_-]?", sep) for k in _KV_KEYS.split("|") for sep in ("", "_", "-")]
    offsets: dict[str, set[int]] = {stem: set() for stem in _KV_STEMS}
    for key in keys:
        for stem in _KV_STEMS:
            i = key.find(stem)
            while i >= 0:
                offsets[stem].add(i)
                i = key.find(stem, i + 1)
    return {stem: tuple(sorted(found)) for stem, found in offsets.items()}


_KV_STEM_OFFSETS = _stem_offsets()
_KV_TAIL_RE = re.compile(r"[a-z_-]*[\"']?[ \t]*[:=]")  # what follows a stem inside a _KV_RE match
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


def _kv_matches(kv: re.Pattern[str], hay: str, low: str, hits: Hits | None = None) -> list[re.Match[str]]:
    """Key=value matches, tried only at word starts shortly before a key stem
    (much cheaper than scanning every position of the text)."""
    if hits is None:
        hits = Hits.direct(low)
    starts: set[int] = set()
    if hay is low:
        # A key matched at j holds a stem at one of that stem's offsets from j, and
        # the stem is followed by the rest of the key, an optional quote, blanks and
        # ":" or "=". So only those starts, before such stems, can match.
        tail = _KV_TAIL_RE.match
        for stem in _KV_STEMS:
            offsets = _KV_STEM_OFFSETS[stem]
            for i in hits.positions(stem):
                if tail(low, i + len(stem)) is not None:
                    for offset in offsets:
                        j = i - offset
                        if j == 0 or (j > 0 and not low[j - 1].isalnum()):
                            starts.add(j)
    else:  # IGNORECASE on the original text: any word start up to 8 before a stem
        for stem in _KV_STEMS:
            for i in hits.positions(stem):
                for j in range(max(0, i - 8), i + 1):
                    if j == 0 or not low[j - 1].isalnum():
                        starts.add(j)
    out, last = [], -1
    for j in sorted(starts):
        if j < last:
            continue
        m = kv.match(hay, j)
        if m:
            out.append(m)
            last = m.end()
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


def scan_secrets(text: str, low: str | None = None, rules=None, hits: Hits | None = None) -> list[Cand]:
    """``rules``: the compiled tables of the languages asked for (all by default); ``hits``:
    the keywords found in ``low`` (needles.py), None to find them here."""
    out: list[Cand] = []
    for m in _AWS_KEY_ID_RE.finditer(text):
        if _starts_token(text, m.start()):
            out.append((m.start(), m.end(), SECRET, 1.0))
    # Every branch of _PREFIXED_RE starts with one of _PREFIX_HINTS, so it can
    # only match where one occurs.
    if low is None:
        low = text.lower()
    if hits is None:
        hits = Hits.direct(low)
    # A hint in the text is in the lower-cased text too, where the keyword scan found or
    # ruled it out: the case-sensitive str.find passes run only where it may be.
    heads = [i for (head, hints), lowered in zip(_PREFIX_GROUPS, _PREFIX_LOWER) if any(h in hits for h in lowered)
             for i in find_all(text, head) if text.startswith(hints, i)]
    if heads:
        heads.sort()
        for m in _matches_at(_PREFIXED_RE, text, heads):
            if _starts_token(text, m.start()):
                out.append((m.start(), m.end(), SECRET, 0.95))
    if "eyj" in hits and "eyJ" in text:
        for m in _JWT_RE.finditer(text):
            if _starts_token(text, m.start()) and _jwt_header_ok(m.group(1)):
                out.append((m.start(), m.end(), SECRET, 1.0))
    if "bearer" in hits:
        heads = sorted(find_all(text, "Bearer") + find_all(text, "bearer"))  # _BEARER_RE's heads
        for m in _matches_at(_BEARER_RE, text, heads):
            if (m.start() == 0 or not text[m.start() - 1].isalpha()) and _tokenish(m.group(1)):
                out.append((m.start(1), m.end(1), SECRET, 0.9))
    same = len(low) == len(text)  # lower() can change length for a few characters
    kv, aws, hay = (_KV_RE, _AWS_SECRET_RE, low) if same else (_KV_RE_I, _AWS_SECRET_RE_I, text)
    if "secret" in hits and ("aws" in hits or "secretaccesskey" in hits):
        for m in aws.finditer(hay):
            out.append((m.start(1), m.end(1), SECRET, 0.95))
    for m in _kv_matches(kv, hay, low, hits):
        sep, quoted = m.group(1), m.group(2)
        value = text[m.start(3):m.end(3)]
        if not quoted:
            value = value.rstrip(".)]}>")  # sentence punctuation, not part of the value
        if _kv_value_ok(sep, quoted, value):
            out.append((m.start(3), m.start(3) + len(value), SECRET, 0.8))
    out += _scan_table(text, low, rules or compiled(), hits)
    return out


def _hint_offsets(pattern: str, hint: str) -> tuple[int, int] | None:
    """(least, most) characters before the literal ``hint`` in every match of ``pattern``,
    when the pattern is a sequence of literals and bounded repeats of one character class
    followed by the hint's characters; None otherwise, or when the hint starts the pattern."""
    try:
        items = list(_sre_parse.parse(pattern))
    except re.error:
        return None
    literal = [(_sre.LITERAL, ord(c)) for c in hint]
    lo = hi = 0
    for k, (op, av) in enumerate(items):
        if items[k:k + len(hint)] == literal:
            return (lo, hi) if hi > 0 else None
        if op is _sre.LITERAL:
            lo, hi = lo + 1, hi + 1
        elif (op is _sre.MAX_REPEAT and len(av[2]) == 1 and av[2][0][0] is _sre.IN
              and av[1] is not _sre.MAXREPEAT):
            lo, hi = lo + av[0], hi + av[1]
        else:
            return None
    return None


def _provider_matches(text: str, hint: str, regex: re.Pattern[str], offsets: tuple[int, int]) -> list[re.Match[str]]:
    """``list(regex.finditer(text))`` for a pattern whose every match holds ``hint`` between
    ``offsets`` characters after its start (_hint_offsets): tried only at those starts."""
    least, most = offsets
    starts = sorted({s for i in find_all(text, hint) for s in range(i - most, i - least + 1) if s >= 0})
    return _matches_at(regex, text, starts)


# True: no keyword gates it. The offsets: where the literal sits at a bounded distance after
# the start of every match (a Telegram token's ":AA", a Mailchimp key's "-us"), the pattern
# is tried only at those starts before each occurrence, not scanned over the whole text.
_PROVIDERS = tuple((hint, len(hint) == 1 or hint.lower(), re.compile(pattern), group, _hint_offsets(pattern, hint))
                   for _, hint, pattern, group in SECRET_PROVIDERS)
# A value introduced by a cue word: the first of the next few tokens on the same line
# that mixes letters with digits. Trailing sentence punctuation and quotes are not part of it.
_TOKEN_RE = re.compile(_VALUE)
_VALUE_END = ".,;:)]}>\"'"
_TOKEN_STOP_RE = re.compile(r"[\s\"'`,;]")  # no _VALUE token holds one
# Every character str.isdigit() holds (ASCII digits, the Latin-1 superscripts) and, not to
# list them, every one beyond Latin-1.
_MAYBE_DIGIT_RE = re.compile(r"[^\x00-/:-\xb1\xb4-\xb8\xba-\xff]")
CUE_REACH, _CUE_TOKENS = 64, 8


# A period of the business calendar (Q3/2025, H1-2026, KW12, FY2025): a date, not a secret.
_PERIOD_RE = re.compile(r"(?:q[1-4]|h[12]|kw\d{1,2}|cw\d{1,2}|fy)(?:[/.-]?(?:19|20)?\d\d)?", re.IGNORECASE)


# The end of the cue's sentence: a word of five or more letters alone, then ".", "!" or "?"
# and a blank ("Das Passwort liegt im Tresor. Commit 9f1ea5c..."). A value comes in the
# sentence that names it; shorter words before a dot are mostly abbreviations (bzw., inkl.,
# Nr., ca.), which do not end one.
_SENTENCE_END_RE = re.compile(r"(?<!\S)[^\W\d_]{5,}[.!?](?=\s)")


_ASCII_DIGIT_RE = re.compile(r"[0-9]")  # str.isdigit() on ASCII
_ASCII_LETTER_RE = re.compile(r"[A-Za-z]")  # str.isalpha() on ASCII


def _value_like(value: str) -> bool:
    if value.isascii():
        if _ASCII_DIGIT_RE.search(value) is None or _ASCII_LETTER_RE.search(value) is None:
            return False
    elif not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return False
    if _PERIOD_RE.fullmatch(value):
        return False
    if "://" in value or "@" in value:
        return False
    if value[0] in "$<{[%*(" or value.lower() in _KV_STOP:
        return False
    return not (value.replace("-", "").replace(".", "").replace("/", "").isdigit())


# The last word (and the one before it) of a text, matched on the text reversed: the same
# words as a search for r"(?:(word)[ .-]+)?(word)$", without trying every start.
_LAST_WORDS_REV_RE = re.compile(r"([^\W\d_]+)(?:[ .-]+([^\W\d_]+))?")


def _after_reference(low: str, lo: int, start: int, references: frozenset[str]) -> bool:
    """Whether the token at ``start`` follows a reference word (``rules.anti_columns``: the
    phone anti-cues, letters only: lot, charge, sendung, sku, order...) with nothing but
    separators between them, after ``lo`` (the cue's end)."""
    before = low[lo if lo > start - 40 else start - 40:start].rstrip(" \t:#=.-")
    m = _LAST_WORDS_REV_RE.match(before[::-1])
    if m is None:
        return False
    last = m.group(1)[::-1]
    return last in references or (m.group(2) is not None and m.group(2)[::-1] + last in references)


def cue_matches(low: str, rules, hits: Hits | None = None) -> list[re.Match[str]]:
    """Secret cue words at word starts, found from their stems (``hits``: as found in
    ``low`` by needles.py, None to find them here)."""
    if hits is None:
        hits = Hits.direct(low)
    starts: list[int] = []
    for _, found in hits.among(rules.secret_stem_set):
        for i in found:
            if i == 0 or not low[i - 1].isalnum():
                starts.append(i)
    out = []
    match = rules.secret_cue.match
    for i in sorted(starts):
        m = match(low, i)
        if m is not None:
            out.append(m)
    return out


def _scan_table(text: str, low: str, rules, hits: Hits | None = None) -> list[Cand]:
    """Provider formats (rules.SECRET_PROVIDERS) and values after cue words (rules.SECRET_CUES)."""
    out: list[Cand] = []
    if hits is None:
        hits = Hits.direct(low)
    for hint, low_hint, regex, group, offsets in _PROVIDERS:
        if (low_hint is True or low_hint in hits) and hint in text:
            for m in (regex.finditer(text) if offsets is None else _provider_matches(text, hint, regex, offsets)):
                if group or _starts_token(text, m.start()):
                    if m.end() == len(text) or text[m.end()] not in _TOKEN_CHARS:
                        out.append((m.start(group), m.end(group), SECRET, 0.9))
    if len(low) == len(text):
        for cue in cue_matches(low, rules, hits):
            stop = text.find("\n", cue.end())
            end = len(text) if stop < 0 else stop
            # The tokens looked at start within CUE_REACH and end at a character no token
            # holds; without a digit (str.isdigit) before there, _value_like refuses them all.
            bound = end
            if cue.end() + CUE_REACH < end:
                sep = _TOKEN_STOP_RE.search(text, cue.end() + CUE_REACH, end)
                if sep is not None:
                    bound = sep.start()
            if _MAYBE_DIGIT_RE.search(text, cue.end(), bound) is None:
                continue
            for n, m in enumerate(_TOKEN_RE.finditer(text, cue.end(), end)):
                if n >= _CUE_TOKENS or m.start() > cue.end() + CUE_REACH:
                    break
                token = m.group()
                if len(token) < 6 or token.isalpha():
                    continue  # too short, or no digit: _value_like would refuse it
                if n and _SENTENCE_END_RE.search(text, cue.end(), m.start()) is not None:
                    break  # the cue's sentence ended before this token: not its value
                value = token.lstrip(":=").rstrip(_VALUE_END)
                if len(value) >= 6 and _value_like(value):
                    start = m.start() + len(m.group()) - len(m.group().lstrip(":="))
                    if _after_reference(low, cue.end(), start, rules.anti_columns):
                        continue  # "Charge L23031-33", "SKU TT4057-86": that reference, not the secret
                    out.append((start, start + len(value), SECRET, 0.8))
                    break
    return out


# What a SECRET needs, for the output guard's pre-check (may_hold_secret). Every keyless
# format above (AWS key ids, the provider prefixes, JWTs, rules.SECRET_PROVIDERS but the PEM
# block, AWS secret keys) is a run of at least this many non-space characters (tests walk
# each pattern); every other SECRET needs a keyword in the lower-cased text: a key=value stem,
# "bearer", a cue stem of the rules (cue_matches), or "-----BEGIN" for a PEM block.
KEYLESS_MIN_RUN = 15
GATE_WORDS = (*_KV_STEMS, "bearer")


@lru_cache(maxsize=None)
def _gate(rules) -> re.Pattern[str]:
    return re.compile(trie_pattern({*GATE_WORDS, *rules.secret_stems}))


def may_hold_secret(text: str, low: str, rules=None) -> bool:
    """False only where scan_secrets(text, low, rules) surely finds nothing: no run of
    KEYLESS_MIN_RUN non-space characters, no PEM header and no keyword of GATE_WORDS or the
    rules' cue stems in ``low`` (``text.lower()``)."""
    if len(text) >= KEYLESS_MIN_RUN and max(map(len, text.split()), default=0) >= KEYLESS_MIN_RUN:
        return True
    if "-----BEGIN" in text:
        return True
    return _gate(rules or compiled()).search(low) is not None


def scan_url_credentials(text: str) -> list[Cand]:
    if "://" not in text:
        return []
    return [(m.start(1), m.end(1), URL_CREDENTIALS, 1.0) for m in _URL_CRED_RE.finditer(text)]
