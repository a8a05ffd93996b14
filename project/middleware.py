"""Django's standard middleware, with hooks run on the event loop instead of a thread.

Under ASGI, Django's MiddlewareMixin wraps every process_request/process_response in
sync_to_async: about a dozen thread hops per request, half of them before the view and
half while the model is already processing the prompt. These hooks do no I/O, so they run
inline here; the two that can touch the database (a modified session, messages that
overflow into the session) still go through a thread.
"""
from __future__ import annotations

import logging
import threading
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse
from django.middleware import clickjacking, common, csrf, security
from psycopg_pool import PoolTimeout

from generation.http.errors import error_shape_for

logger = logging.getLogger("sluice.http")


class InlineHooksMixin:
    """Run a middleware's non-blocking process_request/process_response inline."""

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self._respond(request, response)
        return response

    async def _respond(self, request, response):
        return self.process_response(request, response)


class SecurityMiddleware(InlineHooksMixin, security.SecurityMiddleware):
    pass


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    pass


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    pass


class AuthenticationMiddleware(InlineHooksMixin, auth.AuthenticationMiddleware):
    pass  # only attaches the lazy request.user / request.auser


class CsrfViewMiddleware(InlineHooksMixin, csrf.CsrfViewMiddleware):
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        return super().process_view(request, callback, callback_args, callback_kwargs)


class SessionMiddleware(InlineHooksMixin, sessions.SessionMiddleware):
    async def _respond(self, request, response):
        if request.session.modified or settings.SESSION_SAVE_EVERY_REQUEST:  # saving writes the database
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)


class MessageMiddleware(InlineHooksMixin, messages.MessageMiddleware):
    async def _respond(self, request, response):
        storage = getattr(request, "_messages", None)
        if storage is not None and (storage.used or storage.added_new):  # may spill into the session
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)


class DatabaseOutage:
    """What one process knows about the database being down. A request that found it
    unreachable waited up to the pool's timeout to learn it; for the next OPEN_SECONDS every
    request is refused at once, then one request at a time goes through to find out whether
    it is back (the rest are still refused) until one gets through."""

    OPEN_SECONDS = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False
        self._until = 0.0
        self._probing = False

    def admit(self) -> bool:
        """Whether a request may try the database now (it becomes the probe when down)."""
        with self._lock:
            if not self._down:
                return True
            if self._probing or time.monotonic() < self._until:
                return False
            self._probing = True
            return True

    def failed(self) -> None:
        with self._lock:
            self._down, self._until, self._probing = True, time.monotonic() + self.OPEN_SECONDS, False

    def passed(self) -> None:
        with self._lock:
            if self._down and self._probing:
                self._down, self._probing = False, False


outage = DatabaseOutage()
UNGUARDED_PATHS = ("/healthz", "/readyz", "/metrics")  # report on the database themselves, with their own timeouts


class DatabaseUnavailableMiddleware:
    """A database that refuses, is down or has no free pooled connection is a 503 with
    Retry-After (JSON in the API routes' shape), never a 500: the client can retry. While it
    is known to be down, requests are refused at once instead of each waiting for the pool."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    async def __call__(self, request):
        if request.path.startswith(UNGUARDED_PATHS):
            return await self.get_response(request)
        if not outage.admit():
            return self._refusal(request)
        try:
            response = await self.get_response(request)
        except BaseException:
            outage.passed()  # not the database's doing (that becomes a response below)
            raise
        if not getattr(response, "_database_unavailable", False):
            outage.passed()
        return response

    async def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        if pool_exhausted(exception, getattr(connections["default"], "pool", None)):
            # Load, not an outage: the database answers, so nothing is refused beyond this request.
            logger.warning("request refused: every pooled database connection is in use")
            return self._refusal(request, busy=True)
        outage.failed()
        logger.warning("request refused: database unavailable (%s)", type(exception).__name__)
        return self._refusal(request)

    @staticmethod
    def _refusal(request, *, busy: bool = False):
        headers = {"Retry-After": "1" if busy else "5"}
        code, message = (
            ("database_busy", "Every database connection is in use. Retry shortly.") if busy
            else ("database_unavailable", "The database is not reachable right now. Retry shortly.")
        )
        if shape := error_shape_for(request.path):
            response = shape(503, code, message, headers=headers)
        else:
            response = HttpResponse("The service is briefly unavailable. Retry shortly.", status=503, headers=headers,
                                    content_type="text/plain")
        response._has_been_logged = True  # noqa: SLF001 - an expected refusal, logged where it was found
        response._database_unavailable = not busy  # noqa: SLF001 - read by __call__: not a sign of recovery
        return response


def pool_exhausted(exception: BaseException, pool) -> bool:
    """Whether a request waited out the timeout of `pool` (psycopg's, or None without one)
    because every connection of a full pool was in use (load), rather than because
    connections to the database failed. A pool replacing connections it lost still counts
    them as its own, so failed connection attempts since the last look decide first."""
    cause = exception if isinstance(exception, PoolTimeout) else exception.__cause__
    if pool is None or not isinstance(cause, PoolTimeout):
        return False
    stats = pool.get_stats()
    errors = stats.get("connections_errors", 0)
    failing = errors > _connection_errors_seen.get(id(pool), 0)
    _connection_errors_seen[id(pool)] = errors
    if failing:
        return False
    return stats.get("pool_size", 0) >= stats.get("pool_max", 1) and stats.get("pool_available", 0) == 0


_connection_errors_seen: dict[int, int] = {}  # id(pool) -> its failed connection attempts at the last look
