"""Importing a module starts nothing (docs/architecture.md, Layout): every module of
generation/, redaction/ and project/, imported one by one in a fresh interpreter, leaves no
new thread, no database connection and no socket behind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import importlib, os, pathlib, sys, threading
os.environ["DJANGO_SETTINGS_MODULE"] = "project.test_settings"

def sockets():
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count

import django
django.setup()
from django.db import connections

threads, open_sockets, found = {t.name for t in threading.enumerate()}, sockets(), []
for package in ("generation", "redaction", "project"):
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        parts = list(path.with_suffix("").parts)
        if "migrations" in parts or parts[-1] in ("settings", "test_settings"):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        importlib.import_module(module)
        if {t.name for t in threading.enumerate()} - threads:
            found.append(f"{module}: a thread")
        if connections["default"].connection is not None:
            found.append(f"{module}: a database connection")
        if sockets() != open_sockets:
            found.append(f"{module}: a socket")
        threads, open_sockets = {t.name for t in threading.enumerate()}, sockets()
print("\\n".join(found))
"""


def test_importing_a_module_starts_no_thread_and_opens_no_connection():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ""
