"""Sealing relay messages: what crosses the channel layer (Redis with several processes)
about a resumable run is encrypted and authenticated with a key only Sluice processes hold,
derived from SECRET_KEY, and refused once older than a short time to live."""
from __future__ import annotations

import base64
import functools
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# A relayed message is read within moments of being sent; anything older is a replay or junk.
SEALED_TTL_SECONDS = 30


class Unsealable(Exception):
    """Not sealed by a Sluice process with this SECRET_KEY, or expired."""


@functools.cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sluice resume relay v1").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(payload) -> str:
    """JSON-encode and encrypt `payload` (AES-128-CBC and HMAC-SHA256, with its time)."""
    return _fernet(settings.SECRET_KEY).encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()


def unseal(token: str, *, ttl: int = SEALED_TTL_SECONDS):
    """The payload of a sealed token, or Unsealable."""
    try:
        return json.loads(_fernet(settings.SECRET_KEY).decrypt(token.encode(), ttl=ttl))
    except (InvalidToken, ValueError, TypeError, AttributeError):
        raise Unsealable() from None
