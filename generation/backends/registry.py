"""The process-wide backend: built once from settings, on first use or at start-up."""
from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Backend

_lock = threading.Lock()
_backend: Backend | None = None


def get_backend() -> Backend:
    """Return the loaded backend, loading it (weights once per process) on first call."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = _build_backend()
    return _backend


def loaded_backend() -> Backend | None:
    """The backend if it is loaded already; never loads."""
    return _backend


def reset_backend() -> None:
    """Close and forget the backend (tests, shutdown)."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None


def _build_backend() -> Backend:
    return import_string(settings.SLUICE_BACKEND).from_settings(settings)
