"""`manage.py prepare_model`: assemble or check the GGUF and print its SHA-256 (the model version)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.backends.model_files import configured_model_file


class Command(BaseCommand):
    help = "Assemble the embedded model (or check SLUICE_MODEL_PATH) and print its name and SHA-256."

    def handle(self, *args, **options):
        try:
            model = configured_model_file()
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        source = "SLUICE_MODEL_PATH" if settings.SLUICE_MODEL_PATH else "embedded package"
        self.stdout.write(f"model {model.name} ({source})\n  path   {model.path}\n  sha256 {model.sha256}")
