"""Random secrets that are stored only as hashes: session tokens and API keys.

A token is high-entropy random data, so a fast SHA-256 is the right hash (bcrypt is for low-entropy
passwords). Lookups go by the hash (sessions) or by a short public prefix (API keys), and the final
comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

API_KEY_SCHEME = "dlk"
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token (``nbytes`` of entropy)."""
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token: what the database stores instead of the token.

    A presented "token" holding a lone surrogate (never one of ours) hashes too, to a value that matches
    nothing, instead of failing to encode.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def tokens_match(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token against a stored hash."""
    return hmac.compare_digest(hash_token(token), stored_hash)


def new_api_key() -> tuple[str, str]:
    """``(prefix, plaintext)``: ``plaintext`` is ``dlk_<prefix>_<secret>`` and is shown to the user once."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return prefix, f"{API_KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"


def api_key_prefix(plaintext: str) -> str | None:
    """The public prefix of a presented key, or None when it is not shaped like one of ours."""
    parts = plaintext.split("_", 2) if isinstance(plaintext, str) else []
    if len(parts) != 3 or parts[0] != API_KEY_SCHEME or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        return None
    return parts[1]
