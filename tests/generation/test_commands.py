from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from generation.models import ApiKey
from generation.records.api_keys import hash_api_key

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_the_key_once_and_stores_only_its_hash():
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "--name", "catalogue-sync", stdout=out, stderr=err)
    raw_key = out.getvalue().strip()
    api_key = ApiKey.objects.get()
    assert raw_key.startswith(f"sluice_{api_key.prefix}_") and len(raw_key) > 40
    assert api_key.key_hash == hash_api_key(raw_key) and raw_key not in api_key.key_hash
    assert raw_key not in err.getvalue() and "shown only once" in err.getvalue()


def test_create_api_key_for_an_unknown_user_fails_cleanly():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_key", "--name", "x", "--user", "ghost")


def test_ensure_admin_creates_one_admin_and_prints_its_password_once(monkeypatch):
    monkeypatch.delenv("SLUICE_ADMIN_PASSWORD", raising=False)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    password = out.getvalue().split("password: ")[1].split()[0]
    admin = get_user_model().objects.get()
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert again.getvalue() == "" and get_user_model().objects.count() == 1


def test_ensure_admin_takes_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLUICE_ADMIN_USERNAME", "ops")
    monkeypatch.setenv("SLUICE_ADMIN_PASSWORD", "a-long-chosen-password")
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "a-long-chosen-password" not in out.getvalue()
    assert get_user_model().objects.get(username="ops").check_password("a-long-chosen-password")


def test_serve_refuses_to_start_without_collected_static_files(settings, tmp_path):
    from django.core.management.base import CommandError

    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
    settings.STATIC_ROOT = tmp_path
    from django.contrib.staticfiles import storage
    from django.utils.functional import empty

    storage.staticfiles_storage._wrapped = empty  # rebuild with the settings above
    try:
        with pytest.raises(CommandError, match="collectstatic"):
            call_command("serve", "--port", "1")
    finally:
        storage.staticfiles_storage._wrapped = empty
