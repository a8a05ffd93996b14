"""Shared test set-up lives in project/test_settings.py (data dir, scripted backend).
Django imports stay inside hooks and fixtures so the pure-Python redaction tests need no Django."""
import os
from pathlib import Path

import pytest


def pytest_sessionfinish(session, exitstatus):
    """pytest-django deletes this process's SQLite test database but not its WAL sidecars."""
    data_dir = os.environ.get("SLUICE_DATA_DIR")
    if data_dir:
        for sidecar in Path(data_dir).glob(f"test-{os.getpid()}.sqlite3-*"):
            sidecar.unlink(missing_ok=True)


@pytest.fixture
def scripted(settings):
    """The scripted backend and a fresh scheduler, reset around each test."""
    from generation.lifecycle import runtime
    from tests.support.scripted import ScriptedBackend
    from generation.lifecycle.runtime import reset_scheduler

    settings.SLUICE_BACKEND = "tests.support.scripted.ScriptedBackend"
    settings.SLUICE_SLOTS = 1
    ScriptedBackend.reset()
    runtime.reset_backend()
    reset_scheduler()
    yield ScriptedBackend
    runtime.reset_backend()
    reset_scheduler()
    ScriptedBackend.reset()
