"""Top-level detection: run every detector, then resolve overlaps."""
from __future__ import annotations

from functools import lru_cache
from operator import itemgetter
from typing import Collection

from . import commercial, secrets
from .commercial import scan_commercial_terms, scan_prices, scan_term_rules
from .folding import fold
from .needles import NeedleIndex
from .phones import scan_phones
from .pii import digit_runs, scan_cards, scan_emails, scan_ibans, scan_ips
from .secrets import scan_secrets, scan_url_credentials
from .rules import compiled
from .shadow import classes_and_lower
from .spans import (
    BUILTIN_TYPES,
    COMMERCIAL_TERM,
    CREDIT_CARD,
    EMAIL_ADDRESS,
    IBAN_CODE,
    IP_ADDRESS,
    PHONE_NUMBER,
    PRICE,
    PRIORITY,
    SECRET,
    URL_CREDENTIALS,
    Cand,
    Span,
    as_spans,
    resolve_cands,
)
from .terms import TermMatcher

DEFAULT_REGION = "US"

# Types that outrank PHONE_NUMBER: phone candidates overlapping them are skipped.
_ABOVE_PHONE = frozenset(PRIORITY[: PRIORITY.index(PHONE_NUMBER)])
_ABOVE_PHONE_BUILTIN = _ABOVE_PHONE & BUILTIN_TYPES
_END = itemgetter(1)


@lru_cache(maxsize=None)
def _keywords(rules) -> NeedleIndex:
    """Every keyword the detectors look for in the lower-cased text, for one compiled
    language set (built once per set, as the set itself is)."""
    return NeedleIndex([*(hint for hint, _ in rules.terms), *rules.secret_stems,
                        *secrets.LOW_NEEDLES, *commercial.LOW_NEEDLES])


@lru_cache(maxsize=64)
def _keywords_and_heads(rules, heads: tuple[str, ...]) -> NeedleIndex:
    """:func:`_keywords` plus a TermMatcher's first words, found in the same scan; the
    detectors' own index where the words would cost it its start filter (needles.py)."""
    index = NeedleIndex([*_keywords(rules).needles, *heads])
    return index if index.filtered or not _keywords(rules).filtered else _keywords(rules)


def scan(
    text: str,
    *,
    terms: TermMatcher | None = None,
    region: str = DEFAULT_REGION,
    types: Collection[str] | None = None,
    languages: Collection[str] | None = None,
) -> list[Cand]:
    """All raw detections as (start, end, type, score) tuples (may overlap).

    ``types`` limits the built-in types detected. The result for a type does
    not depend on which others are asked for: when PHONE_NUMBER is, the
    detectors it defers to run too (their spans block phone candidates, so the
    digits of an e-mail address never come back as a phone number), unreported.

    Detectors see the text folded (folding.py: compatibility forms to ASCII,
    invisible format characters dropped); the offsets returned are the original's.
    """
    rules = compiled(languages)
    folded = fold(text)
    if folded is None:
        return _scan(text, terms, region, types, rules)
    return folded.map_cands(_scan(folded.text, terms, region, types, rules))


def _scan(text: str, terms: TermMatcher | None, region: str, types: Collection[str] | None, rules) -> list[Cand]:
    """:func:`scan` on text that needs no folding. The order of the detectors fixes the
    order of the raw candidates (e.g. for phones' ``blocked``). They share one
    ``text.lower()`` and one class string (see shadow.py)."""
    asked = None if types is None else frozenset(types)
    run = asked | _ABOVE_PHONE_BUILTIN if asked is not None and PHONE_NUMBER in asked else asked

    def want(type_: str) -> bool:
        return run is None or type_ in run

    out: list[Cand] = []
    cls, low = classes_and_lower(text, lower=bool(want(SECRET) or want(COMMERCIAL_TERM) or want(PRICE) or terms))
    # One scan for the keywords of every detector below (and the sensitive terms' first
    # words), instead of a str.find pass each.
    heads = terms.heads if terms else None
    index = _keywords(rules) if heads is None else _keywords_and_heads(rules, heads)
    hits = index.scan(low) if low is not None else None
    if want(SECRET):
        out += scan_secrets(text, low, rules, hits)
    if want(URL_CREDENTIALS):
        out += scan_url_credentials(text)
    if want(IBAN_CODE):
        out += scan_ibans(text, cls)
    if want(EMAIL_ADDRESS):
        out += scan_emails(text)
    if want(IP_ADDRESS):
        out += scan_ips(text)
    if want(COMMERCIAL_TERM):
        out += scan_commercial_terms(text, low, hits)
        out += scan_term_rules(text, low, rules, hits)
    if want(PRICE):
        out += scan_prices(text, low, cls, rules, hits)
    if want(CREDIT_CARD):
        out += scan_cards(text, cls)
    if want(PHONE_NUMBER):
        # Every detector above outranks PHONE_NUMBER: let it skip their spans.
        blocked = sorted([c for c in out if c[2] in _ABOVE_PHONE], key=_END)
        out += scan_phones(text, region, blocked, digit_runs(text, cls), rules, cls)
    if run != asked:
        out = [c for c in out if c[2] in asked]  # drop what ran only to block phones
    if terms:
        out += terms.scan(text, low=low, hits=hits)
    return out


def detect(
    text: str,
    *,
    terms: TermMatcher | None = None,
    region: str = DEFAULT_REGION,
    languages: Collection[str] | None = None,
) -> list[Span]:
    """Non-overlapping spans sorted by start (see ``spans.PRIORITY``).

    ``region`` is the phonenumbers region tried first for national-format numbers.
    ``languages`` (codes from ``rules.LANGUAGES``; None: all of them) selects the cue
    words and phrase rules used; language-independent formats are always detected.
    """
    return as_spans(resolve_cands(scan(text, terms=terms, region=region, languages=languages)))
