"""The process-wide singletons of the lifecycle, one getter each: the backend (built from
settings on first use), the scheduler in front of its slots, and the runs this process is
serving. Nothing here starts a thread or opens a connection on import."""
from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from generation.backends.base import Backend

from .active import ActiveRuns
from .scheduler import Scheduler

_lock = threading.Lock()
_backend: Backend | None = None
_scheduler: Scheduler | None = None

active_runs = ActiveRuns()  # by request id, so a cancel from anywhere can find its run


def get_backend() -> Backend:
    """Return the loaded backend, loading it (weights once per process) on first call."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is not None:
                return _backend
            _backend = backend = import_string(settings.SLUICE_BACKEND).from_settings(settings)
        # A backend whose slots come and go (remote upstreams in cool-down) drives the
        # scheduler's capacity; outside the lock, since the listener is called at once.
        listen = getattr(backend, "add_capacity_listener", None)
        if listen is not None:
            listen(lambda slots: get_scheduler().set_capacity(slots))
    return _backend


def loaded_backend() -> Backend | None:
    """The backend if it is loaded already; never loads."""
    return _backend


def reset_backend() -> None:
    """Close and forget the backend (tests)."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None


def get_scheduler() -> Scheduler:
    """The bounded queue in front of the backend's slots (SLUICE_SLOTS, SLUICE_MAX_QUEUE)."""
    global _scheduler
    if _scheduler is None:
        with _lock:
            if _scheduler is None:
                _scheduler = Scheduler(slots=settings.SLUICE_SLOTS, max_queue=settings.SLUICE_MAX_QUEUE)
    return _scheduler


def reset_scheduler() -> None:
    """Forget the scheduler (tests)."""
    global _scheduler
    if _scheduler is not None:
        _scheduler.close()
    _scheduler = None
