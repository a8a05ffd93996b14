"""The project as a Django app: registers its system checks and its request_started receiver."""
from django.apps import AppConfig

from project import request_signals


class ProjectConfig(AppConfig):
    name = "project"
    label = "sluice_project"
    verbose_name = "Sluice project"

    def ready(self) -> None:
        from project import checks  # noqa: F401 - registers on import

        request_signals.install()
