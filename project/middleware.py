"""Django's standard middleware, with hooks run on the event loop instead of a thread.

Under ASGI, Django's MiddlewareMixin wraps every process_request/process_response in
sync_to_async: about a dozen thread hops per request, half of them before the view and
half while the model is already processing the prompt. These hooks do no I/O, so they run
inline here; the two that can touch the database (a modified session, messages that
overflow into the session) still go through a thread.
"""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.middleware import clickjacking, common, csrf, security

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


class DatabaseUnavailableMiddleware:
    """A database that refuses, is down or has no free pooled connection is a 503 with
    Retry-After (JSON in the API routes' shape), never a 500: the client can retry."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    async def __call__(self, request):
        return await self.get_response(request)

    async def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.warning("request refused: database unavailable (%s)", type(exception).__name__)
        headers = {"Retry-After": "5"}
        if shape := error_shape_for(request.path):
            return shape(503, "database_unavailable", "The database is not reachable right now. Retry shortly.",
                         headers=headers)
        response = HttpResponse("The service is briefly unavailable. Retry shortly.", status=503, headers=headers,
                                content_type="text/plain")
        response._has_been_logged = True  # noqa: SLF001 - an expected refusal, logged above at WARNING
        return response
