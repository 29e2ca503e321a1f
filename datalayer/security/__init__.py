"""Password hashing, random tokens and API keys stored as hashes, and key wrapping."""

from datalayer.security.keywrap import new_data_key, unwrap_key, wrap_key
from datalayer.security.passwords import (
    MAX_PASSWORD_BYTES,
    hash_password,
    is_bcrypt_hash,
    needs_rehash,
    verify_password,
)
from datalayer.security.tokens import api_key_prefix, hash_token, new_api_key, new_token, tokens_match

__all__ = [
    "MAX_PASSWORD_BYTES",
    "api_key_prefix",
    "hash_password",
    "hash_token",
    "is_bcrypt_hash",
    "needs_rehash",
    "new_api_key",
    "new_data_key",
    "new_token",
    "tokens_match",
    "unwrap_key",
    "verify_password",
    "wrap_key",
]
