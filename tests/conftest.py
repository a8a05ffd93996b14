"""Shared test set-up lives in project/test_settings.py (data dir, scripted backend).
Django imports stay inside hooks and fixtures so the pure-Python redaction tests need no Django."""
import os
from pathlib import Path


def pytest_sessionfinish(session, exitstatus):
    """pytest-django deletes this process's SQLite test database but not its WAL sidecars."""
    data_dir = os.environ.get("SLUICE_DATA_DIR")
    if data_dir:
        for sidecar in Path(data_dir).glob(f"test-{os.getpid()}.sqlite3-*"):
            sidecar.unlink(missing_ok=True)
