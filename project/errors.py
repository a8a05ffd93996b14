"""Error pages for what Django itself refuses (404, 400, 403, 500): JSON in the route's error
shape under /api/ and /v1/, Django's own pages elsewhere."""
from __future__ import annotations

import logging

from django.core.exceptions import DisallowedHost
from django.views import defaults

from generation.http.errors import error_shape_for

logger = logging.getLogger("sluice.http")


def not_found(request, exception=None):
    if shape := error_shape_for(request.path):
        return shape(404, "not_found", "Unknown endpoint or malformed id in the path.")
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    if isinstance(exception, DisallowedHost):
        # Django's security logger would write the Host value at ERROR; it is input, so not here.
        logger.warning("request refused: Host header not in ALLOWED_HOSTS")
    if shape := error_shape_for(request.path):
        return shape(400, "bad_request", "The request could not be understood (check its Host header and framing).")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if shape := error_shape_for(request.path):
        return shape(403, "forbidden", "You do not have access to this resource.")
    return defaults.permission_denied(request, exception)


def server_error(request):
    if shape := error_shape_for(request.path):
        return shape(500, "internal_error", "The server failed to handle the request. Nothing was kept.")
    return defaults.server_error(request)
