"""Signal receivers of the redaction app: saving or deleting a SensitiveTerm invalidates the term cache."""
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import SensitiveTerm
from .fields import term_matchers


@receiver([post_save, post_delete], sender=SensitiveTerm)
def sensitive_terms_changed(**_kwargs) -> None:
    term_matchers.invalidate()
