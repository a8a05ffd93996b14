"""request_started under ASGI starts no thread: Django's own sync receivers would make the
event loop wait in Thread.start for a thread of the request's own before any view ran.
(Django's test client puts close_old_connections back after each of its requests, so these
tests install the replacement themselves, and check set-up in a fresh interpreter.)"""
import os
import subprocess
import sys
from pathlib import Path

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.core import signals
from django.db import close_old_connections

from project import request_signals

ROOT = Path(__file__).resolve().parents[2]


async def test_request_started_needs_no_thread_of_the_request():
    request_signals.install()
    async with ThreadSensitiveContext() as context:
        await signals.request_started.asend(sender=None)
        assert SyncToAsync.context_to_thread_executor.get(context) is None
    signals.request_started.connect(close_old_connections)  # Django's own: a thread for the request
    try:
        async with ThreadSensitiveContext() as context:
            await signals.request_started.asend(sender=None)
            assert SyncToAsync.context_to_thread_executor.get(context) is not None
    finally:
        request_signals.install()


def test_django_set_up_installs_the_replacement():
    script = (
        "import django; django.setup()\n"
        "from django.core import signals; from django.db import close_old_connections, reset_queries\n"
        "from project.request_signals import request_started\n"
        "connected = [ref() for _, ref, *_ in signals.request_started.receivers]\n"
        "assert request_started in connected, connected\n"
        "assert reset_queries not in connected and close_old_connections not in connected, connected\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
