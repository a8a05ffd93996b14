"""Settings for the test suite: the production settings with a private data directory,
the scripted backend by default, and fast password hashing."""
import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SLUICE_DATA_DIR", str(_ROOT / "var" / "test"))
os.environ.setdefault("SLUICE_MODEL_CACHE_DIR", str(_ROOT / "var" / "models"))
os.environ.setdefault("SLUICE_BACKEND", "tests.support.scripted.ScriptedBackend")
os.environ.setdefault("SLUICE_PRELOAD_MODEL", "false")

from project.settings import *  # noqa: E402,F403
from project.settings import DATA_DIR, DATABASES, STORAGES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not SQLite's shared-cache memory database, which fails concurrent writers with
    # "table is locked" instead of waiting as the production WAL file does. One per process,
    # so concurrent test runs never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SLUICE_OWNER_HEARTBEAT_SECONDS = 0  # register processes, but no heartbeat thread outliving a test
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
