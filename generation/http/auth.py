"""Who is calling: a Bearer API key, or a signed-in session with its CSRF token."""
from __future__ import annotations

from django.middleware.csrf import CsrfViewMiddleware

from generation.lifecycle.refusals import RequestInvalid
from generation.records.api_keys import api_key_authenticate
from generation.records.generations import Caller


async def authenticate(request, *, allow_session: bool = True) -> Caller:
    """A Bearer API key, or (when allowed) a signed-in session with a valid CSRF token.

    Raises RequestInvalid(401) when neither is present, (403) on a failed CSRF check.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != "bearer" or not raw_key.strip():
            raise RequestInvalid(401, "unauthorized", "Use 'Authorization: Bearer <API key>'.")
        caller = await api_key_authenticate(raw_key=raw_key.strip())
        if caller is None:
            raise RequestInvalid(401, "unauthorized", "The API key is not valid or has been revoked.")
        return caller
    user = await request.auser() if allow_session else None
    if user is not None and user.is_authenticated:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            rejection = CsrfViewMiddleware(lambda _request: None).process_view(request, None, (), {})
            if rejection is not None:
                raise RequestInvalid(403, "csrf_failed", "CSRF verification failed. Reload the page and try again.")
        return Caller(user_id=user.pk)
    raise RequestInvalid(401, "unauthorized", "Authentication required: send 'Authorization: Bearer <API key>'.")
