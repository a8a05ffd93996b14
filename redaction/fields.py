"""The Django side of redaction (request fields): per-field policies from settings, the cached sensitive-term
matcher, and redaction of one request's fields with a shared placeholder map."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import phonenumbers
from django.conf import settings
from django.db.models import Count, Max

from . import PlaceholderMap, Policy, TermMatcher, redact
from .rules import LANGUAGES

# Built-in defaults; SLUICE_REDACTION_POLICIES overrides them per field and type.
# "*" is the action for types a field does not list.
DEFAULT_FIELD_POLICIES: dict[str, dict[str, str]] = {
    "prompt": {"SECRET": "reject", "CREDIT_CARD": "reject", "URL_CREDENTIALS": "reject",
               "PRICE": "allow", "COMMERCIAL_TERM": "allow", "*": "redact"},
    "product_name": {"PRICE": "allow", "COMMERCIAL_TERM": "allow", "*": "redact"},
    "product_details": {"SECRET": "reject", "CREDIT_CARD": "reject", "URL_CREDENTIALS": "reject",
                        "PRICE": "allow", "COMMERCIAL_TERM": "allow", "*": "redact"},
    "audience": {"*": "redact"},
    "internal_notes": {"*": "redact"},
    "pricing_terms": {"*": "redact"},
}


@dataclass(frozen=True)
class Locale:
    """Where a request's text comes from, when known: the phone region tried first for
    national numbers, and the languages whose cue words apply (None: all of them)."""

    region: str | None = None
    languages: frozenset[str] | None = None

    def over(self, other: "Locale | None") -> "Locale":
        """This locale, with what it leaves unset taken from `other` (a request over its key)."""
        if other is None:
            return self
        return Locale(self.region or other.region, self.languages if self.languages is not None else other.languages)


def parse_locale(*, languages=None, region: str | None = None) -> Locale:
    """A Locale from user input (codes as given, any case); ValueError names the part that is
    wrong and what is allowed, never the value."""
    codes = None
    if languages is not None:
        codes = frozenset(str(code).strip().lower() for code in languages if str(code).strip())
        if not codes or not codes <= set(LANGUAGES):
            raise ValueError(f"languages must be one or more of: {', '.join(LANGUAGES)}.")
    if region:
        region = region.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("region must be a two-letter country code, such as DE or US.")
    return Locale(region=region or None, languages=codes)


def field_policy(field_name: str, locale: Locale | None = None) -> Policy:
    """The policy for a request field: settings first, then the built-in default; the
    locale's region and languages when given (else SLUICE_PHONE_REGION and all languages)."""
    actions = {**DEFAULT_FIELD_POLICIES.get(field_name, {"*": "redact"})}
    actions.update(settings.SLUICE_REDACTION_POLICIES.get(field_name, {}))
    default = actions.pop("*", "redact")
    locale = locale or Locale()
    return Policy(actions, default, region=locale.region or settings.SLUICE_PHONE_REGION, languages=locale.languages)


@dataclass
class RequestRedaction:
    """Redacted field texts, the request's placeholder map (in memory only), counts by
    type, and the types each field rejected."""

    texts: dict[str, str]
    mapping: PlaceholderMap
    counts: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def validation_result(self) -> str:
        if self.rejected:
            return "rejected"
        return "redacted" if self.counts else "ok"


def redact_fields(
    fields: Mapping[str, str],
    *,
    terms: TermMatcher | None,
    policies: Mapping[str, str] | None = None,
    locale: Locale | None = None,
) -> RequestRedaction:
    """Redact each field by its policy, numbering placeholders across the request.
    `policies` names the policy a field uses when it is not the field's own name
    (e.g. every chat message uses "prompt"); `locale` narrows phone regions and languages."""
    mapping = PlaceholderMap()
    result = RequestRedaction(texts={}, mapping=mapping)
    for name, text in fields.items():
        policy = field_policy((policies or {}).get(name, name), locale)
        redacted = redact(text, policy, terms=terms, mapping=mapping)
        result.texts[name] = redacted.text
        for type_, count in redacted.counts.items():
            result.counts[type_] = result.counts.get(type_, 0) + count
        if redacted.rejected:
            result.rejected[name] = redacted.rejected
    return result


class TermMatcherCache:
    """One compiled matcher per process. Saving a term invalidates it here at once; other
    processes notice within SLUICE_TERMS_REFRESH_SECONDS through one cheap aggregate query,
    so no request pays a query of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matcher: TermMatcher | None = None
        self._fingerprint = None
        self._checked_at = float("-inf")

    def invalidate(self) -> None:
        with self._lock:
            self._checked_at = float("-inf")

    def needs_check(self) -> bool:
        return time.monotonic() - self._checked_at >= settings.SLUICE_TERMS_REFRESH_SECONDS

    def current(self) -> TermMatcher | None:
        """The matcher, re-checking the database when due. Blocking: call from a thread."""
        from .models import SensitiveTerm  # here: this module is imported before Django is set up

        with self._lock:
            if self.needs_check():
                active = SensitiveTerm.objects.filter(active=True)
                fingerprint = tuple(active.aggregate(n=Count("id"), latest=Max("updated_at")).values())
                if fingerprint != self._fingerprint:
                    terms = list(active.values_list("term", "type"))
                    self._matcher = TermMatcher(terms) if terms else None
                    self._fingerprint = fingerprint
                self._checked_at = time.monotonic()
            return self._matcher

    def cached(self) -> TermMatcher | None:
        return self._matcher


term_matchers = TermMatcherCache()
