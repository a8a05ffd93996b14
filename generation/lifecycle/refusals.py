"""What refuses a request before its response starts: the client's mistakes
(RequestInvalid, a 4xx), a full queue (QueueFull, 503) or a backend that cannot load (503)."""
from __future__ import annotations

from generation.backends.base import BackendError
from generation.records.usage import RateLimited

from .scheduler import QueueFull


class RequestInvalid(Exception):
    """A 4xx the client can fix. `message` is safe to show and to log."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, **details) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.details = details  # extra safe fields for the error body (e.g. rejected types)


REFUSALS = (RequestInvalid, RateLimited, QueueFull, BackendError, FileNotFoundError)
