"""Django app config of the redaction app; connects its signal receivers when ready."""
from django.apps import AppConfig


class RedactionConfig(AppConfig):
    name = "redaction"
    verbose_name = "Redaction"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the term-cache invalidation)
