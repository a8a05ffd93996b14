"""Sluice redaction core: detection, placeholder redaction, streaming restoration
and output guarding for sensitive business text. Pure Python, no Django.

No detected value, prompt or output text ever appears in an exception
message, repr or count produced by this package.
"""
from .detect import DEFAULT_REGION, detect
from .guard import OutputGuard
from .pipeline import OutputPipeline
from .placeholders import LABELS, PlaceholderMap
from .redact import ACTIONS, DEFAULT_ACTION, Policy, Redacted, RedactionRejected, redact
from .restore import Restorer, Segment
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
    Span,
)
from .terms import TermMatcher

__all__ = [
    "ACTIONS", "BUILTIN_TYPES", "COMMERCIAL_TERM", "CREDIT_CARD", "DEFAULT_ACTION", "DEFAULT_REGION",
    "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "LABELS", "OutputGuard", "OutputPipeline", "PHONE_NUMBER",
    "PRICE", "PRIORITY", "PlaceholderMap", "Policy", "Redacted", "RedactionRejected", "Restorer",
    "SECRET", "Segment", "Span", "TermMatcher", "URL_CREDENTIALS", "detect", "redact",
]
