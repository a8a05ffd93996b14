import pytest


@pytest.fixture
def scripted(settings):
    """The scripted backend and a fresh scheduler, reset around each test."""
    from generation.backends import registry
    from generation.backends.scripted import ScriptedBackend
    from generation.intake import reset_scheduler

    settings.SLUICE_BACKEND = "generation.backends.scripted.ScriptedBackend"
    settings.SLUICE_SLOTS = 1
    ScriptedBackend.reset()
    registry.reset_backend()
    reset_scheduler()
    yield ScriptedBackend
    registry.reset_backend()
    reset_scheduler()
    ScriptedBackend.reset()


PASSWORD = "pw-long-enough-1"


@pytest.fixture
def editor(django_user_model):
    return django_user_model.objects.create_user("editor", password=PASSWORD)
