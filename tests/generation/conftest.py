import logging

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


@pytest.fixture
def api_key(db):
    """A fresh API key: (row, raw key)."""
    from generation.services import api_key_create

    return api_key_create(name="tests")


@pytest.fixture
def auth_headers(api_key):
    return {"Authorization": f"Bearer {api_key[1]}"}


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def generation_log():
    """Records of the sluice.generation logger (it does not propagate to the root)."""
    handler, logger = ListHandler(), logging.getLogger("sluice.generation")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
