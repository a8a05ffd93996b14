"""Sensitive terms managed by admins (supplier names, internal code names, customers)."""
from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models


class SensitiveTerm(models.Model):
    """A word or phrase redacted wherever it appears (case-insensitive, whole words)."""

    term = models.CharField(max_length=200, unique=True)
    type = models.CharField(
        max_length=40,
        default="SUPPLIER",
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*$", "Use an upper-case identifier, e.g. SUPPLIER.")],
        help_text="Placeholder type, e.g. SUPPLIER, CUSTOMER, INTERNAL_CODENAME.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["type", "term"]

    def __str__(self) -> str:
        return f"{self.term} ({self.type})"
