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
    PRIORITY,
    SECRET,
    URL_CREDENTIALS,
    Span,
    resolve_overlaps,
)
from .terms import TermMatcher

DEFAULT_REGION = "US"

# Run order (it fixes the order of the raw candidates, e.g. for phones' ``blocked``).
_DETECTORS: dict[str, Callable[[str], list[Span]]] = {
    SECRET: find_secrets,
    URL_CREDENTIALS: find_url_credentials,
    IBAN_CODE: find_ibans,
    EMAIL_ADDRESS: find_emails,
    IP_ADDRESS: find_ips,
    COMMERCIAL_TERM: find_commercial_terms,
    PRICE: find_prices,
}
# Detectors that take the shared lower-cased text (one str.lower() per call:
# on non-ASCII text it costs ~50 us for 4 KB).
_WANTS_LOW = frozenset({SECRET, COMMERCIAL_TERM, PRICE})
# Types that outrank PHONE_NUMBER: phone candidates overlapping them are skipped.
_ABOVE_PHONE = frozenset(PRIORITY[: PRIORITY.index(PHONE_NUMBER)])


def detect_candidates(
    text: str,
    *,
    terms: TermMatcher | None = None,
    region: str = DEFAULT_REGION,
    types: Collection[str] | None = None,
) -> list[Span]:
    """All raw detections (may overlap); ``types`` limits the built-in detectors run."""
    out: list[Span] = []
    low: str | None = None
    for type_, fn in _DETECTORS.items():
        if types is None or type_ in types:
            if type_ in _WANTS_LOW:
                if low is None:
                    low = text.lower()
                out.extend(fn(text, low=low))  # type: ignore[call-arg]
            else:
                out.extend(fn(text))
    want_card = types is None or CREDIT_CARD in types
    want_phone = types is None or PHONE_NUMBER in types
    if want_card or want_phone:
        runs = digit_runs(text)
        if want_card:
            out.extend(find_cards(text, runs))
        if want_phone:
            # Every detector above outranks PHONE_NUMBER: let it skip their spans.
            blocked = sorted((s for s in out if s.type in _ABOVE_PHONE), key=lambda s: s.end)
            out.extend(find_phones(text, region, blocked, runs))
    if terms:
        out.extend(terms.find(text, low=text.lower() if low is None else low))
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
