"""Wrapping data-encryption keys (a stored model's file key) so the database never holds them in plain text.

AES-256-GCM from ``cryptography`` with a wrapping key derived (SHA-256) from the
``DATALAYER_KEY_WRAPPING_SECRET`` setting. The stored form is ``v1:<base64(nonce | ciphertext+tag)>``; the
record id is bound as associated data, so a wrapped key copied onto another row does not unwrap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from datalayer.errors import ConfigurationError, ValidationError

_VERSION = "v1"
_NONCE_BYTES = 12
DATA_KEY_BYTES = 32


def _wrapping_key(secret: str | None) -> bytes:
    if not secret:
        raise ConfigurationError(
            "DATALAYER_KEY_WRAPPING_SECRET is not set; set it to a long random string to store encryption keys"
        )
    return hashlib.sha256(b"datalayer-key-wrapping:" + secret.encode("utf-8")).digest()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)


def wrap_key(data_key: bytes, secret: str | None, associated: str) -> str:
    """Encrypt ``data_key`` under the wrapping secret; ``associated`` (the row id) must match on unwrap."""
    if not isinstance(data_key, bytes) or not data_key:
        raise ValidationError({"encryption_key": "expected non-empty bytes, e.g. new_data_key()"})
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_wrapping_key(secret)).encrypt(nonce, data_key, associated.encode("utf-8"))
    return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def _sealed(wrapped: Any) -> bytes | None:
    """The nonce and ciphertext of a stored wrapped key, or None when ``wrapped`` is not in that form."""
    version, _, payload = wrapped.partition(":") if isinstance(wrapped, str) else ("", "", "")
    if version != _VERSION or not payload:
        return None
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) > _NONCE_BYTES + 16 else None  # nonce, at least one byte, the 16-byte tag


def wrapped_form(value: Any) -> Any:
    """A domain check: ``value`` is a wrapped key as ``wrap_key`` writes it, never a raw key."""
    if _sealed(value) is None:
        raise ValueError(f"must be a key wrapped by security.wrap_key ({_VERSION}:<base64>), never a raw key")
    return value


def unwrap_key(wrapped: str, secret: str | None, associated: str) -> bytes:
    """The data key back; ``ValidationError`` when the secret, the row or the stored value do not match."""
    raw = _sealed(wrapped)
    if raw is None:
        raise ValidationError({"encryption_key_wrapped": "is not a wrapped key this version can read"})
    try:
        return AESGCM(_wrapping_key(secret)).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                                     associated.encode("utf-8"))
    except InvalidTag:
        raise ValidationError(
            {"encryption_key_wrapped": "does not unwrap with this DATALAYER_KEY_WRAPPING_SECRET for this row"}
        ) from None
