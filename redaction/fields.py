"""The Django side of redaction (request fields): per-field policies from settings, the cached sensitive-term
matcher, and redaction of one request's fields with a shared placeholder map."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Max

from . import PlaceholderMap, Policy, TermMatcher, redact

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


def field_policy(field_name: str) -> Policy:
    """The policy for a request field: settings first, then the built-in default."""
    actions = {**DEFAULT_FIELD_POLICIES.get(field_name, {"*": "redact"})}
    actions.update(settings.SLUICE_REDACTION_POLICIES.get(field_name, {}))
    default = actions.pop("*", "redact")
    return Policy(actions, default, region=settings.SLUICE_PHONE_REGION)


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
    fields: Mapping[str, str], *, terms: TermMatcher | None, policies: Mapping[str, str] | None = None
) -> RequestRedaction:
    """Redact each field by its policy, numbering placeholders across the request.
    `policies` names the policy a field uses when it is not the field's own name
    (e.g. every chat message uses "prompt")."""
    mapping = PlaceholderMap()
    result = RequestRedaction(texts={}, mapping=mapping)
    for name, text in fields.items():
        policy = field_policy((policies or {}).get(name, name))
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
        from .models import SensitiveTerm

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
