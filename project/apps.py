"""The project as a Django app, only so that its system checks are registered."""
from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "project"
    label = "sluice_project"
    verbose_name = "Sluice project"

    def ready(self) -> None:
        from project import checks  # noqa: F401 - registers on import
