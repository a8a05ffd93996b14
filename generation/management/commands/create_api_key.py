"""`manage.py create_api_key`: make an API key and print it once (only its hash is stored)."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from generation.records.api_keys import api_key_create
from redaction.fields import parse_locale


class Command(BaseCommand):
    help = "Create an API key and print it once. Only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'catalogue-sync'.")
        parser.add_argument("--user", help="Username that owns the key (optional).")
        parser.add_argument("--languages", help="Redaction languages for its requests, e.g. 'en,de' (default: all).")
        parser.add_argument("--region", help="Phone region tried first, e.g. 'DE' (default: SLUICE_PHONE_REGION).")

    def handle(self, *args, name, user=None, languages=None, region=None, **options):
        try:
            locale = parse_locale(languages=languages.split(",") if languages else None, region=region)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        owner = None
        if user:
            try:
                owner = get_user_model().objects.get(username=user)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {user!r}.") from None
        api_key, raw_key = api_key_create(
            name=name, user=owner, redaction_languages=",".join(sorted(locale.languages or ())),
            phone_region=locale.region or "",
        )
        self.stderr.write(f"Created API key '{api_key.name}' (prefix {api_key.prefix}). It is shown only once:")
        self.stdout.write(raw_key)
