"""Top-level detection: run every detector, then resolve overlaps."""
from __future__ import annotations

from typing import Callable, Collection

from .commercial import find_commercial_terms, find_prices
from .phones import find_phones
from .pii import digit_runs, find_cards, find_emails, find_ibans, find_ips
from .secrets import find_secrets, find_url_credentials
from .spans import (
    COMMERCIAL_TERM,
    CREDIT_CARD,
    EMAIL_ADDRESS,
    IBAN_CODE,
    IP_ADDRESS,
    PHONE_NUMBER,
    PRICE,
    SECRET,
    URL_CREDENTIALS,
    Span,
    rank,
    resolve_overlaps,
)
from .terms import TermMatcher

DEFAULT_REGION = "US"

_DETECTORS: dict[str, Callable[[str], list[Span]]] = {
    SECRET: find_secrets,
    URL_CREDENTIALS: find_url_credentials,
    IBAN_CODE: find_ibans,
    EMAIL_ADDRESS: find_emails,
    IP_ADDRESS: find_ips,
    COMMERCIAL_TERM: find_commercial_terms,
    PRICE: find_prices,
}


def detect_candidates(
    text: str,
    *,
    terms: TermMatcher | None = None,
    region: str = DEFAULT_REGION,
    types: Collection[str] | None = None,
) -> list[Span]:
    """All raw detections (may overlap); ``types`` limits the built-in detectors run."""
    out: list[Span] = []
    for type_, fn in _DETECTORS.items():
        if types is None or type_ in types:
            out.extend(fn(text))
    want_card = types is None or CREDIT_CARD in types
    want_phone = types is None or PHONE_NUMBER in types
    if want_card or want_phone:
        runs = digit_runs(text)
        if want_card:
            out.extend(find_cards(text, runs))
        if want_phone:
            # Every detector above outranks PHONE_NUMBER: let it skip their spans.
            blocked = sorted((s for s in out if rank(s.type) < rank(PHONE_NUMBER)), key=lambda s: s.end)
            out.extend(find_phones(text, region, blocked, runs))
    if terms:
        out.extend(terms.find(text))
    return out


def detect(
    text: str,
    *,
    terms: TermMatcher | None = None,
    region: str = DEFAULT_REGION,
) -> list[Span]:
    """Non-overlapping spans sorted by start (see ``spans.PRIORITY``).

    ``region`` is the phonenumbers default region for national-format numbers.
    """
    return resolve_overlaps(detect_candidates(text, terms=terms, region=region))
