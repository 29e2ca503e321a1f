"""Password hashing, tokens and key wrapping, on their own (no database)."""

import os
import threading

import bcrypt
import pytest

from datalayer import ConfigurationError, ValidationError
from datalayer.security import (
    api_key_prefix,
    hash_password,
    hash_token,
    is_bcrypt_hash,
    needs_rehash,
    new_api_key,
    new_data_key,
    new_token,
    tokens_match,
    unwrap_key,
    verify_password,
    wrap_key,
)


async def test_hash_password_uses_the_requested_cost_and_verifies():
    hashed = await hash_password("correct horse", rounds=5)
    assert is_bcrypt_hash(hashed) and hashed.startswith("$2b$05$")
    assert await verify_password("correct horse", hashed, rounds=5)
    assert not await verify_password("wrong horse", hashed, rounds=5)


async def test_password_over_72_bytes_is_rejected_not_truncated():
    with pytest.raises(ValidationError) as info:
        await hash_password("é" * 37, rounds=4)  # 74 bytes in UTF-8, only 37 characters
    assert "password" in info.value.errors and "72" in info.value.errors["password"]
    await hash_password("a" * 72, rounds=4)  # exactly 72 bytes is fine


async def test_verify_without_a_hash_still_runs_bcrypt_and_fails():
    assert not await verify_password("anything", None, rounds=4)
    assert not await verify_password("anything", "not-a-hash", rounds=4)
    assert not await verify_password("x" * 100, None, rounds=4)


async def test_needs_rehash_when_the_cost_rose():
    hashed = await hash_password("secret-pass", rounds=4)
    assert needs_rehash(hashed, 5)
    assert not needs_rehash(hashed, 4)
    assert needs_rehash("plain-text", 4)


async def test_bcrypt_runs_off_the_event_loop():
    loop_thread = []

    def spy(*args):
        loop_thread.append(threading.current_thread())
        return original(*args)

    original = bcrypt.hashpw
    bcrypt.hashpw = spy
    try:
        await hash_password("secret-pass", rounds=4)
    finally:
        bcrypt.hashpw = original
    assert loop_thread and loop_thread[0] is not threading.main_thread()
    assert loop_thread[0].name.startswith("datalayer-bcrypt")  # the bounded hashing pool


def test_tokens_are_random_and_compared_by_hash():
    a, b = new_token(), new_token()
    assert a != b and len(a) >= 40
    assert len(hash_token(a)) == 64 and a not in hash_token(a)
    assert tokens_match(a, hash_token(a)) and not tokens_match(b, hash_token(a))


def test_api_key_has_a_short_public_prefix():
    prefix, key = new_api_key()
    assert key.startswith(f"dlk_{prefix}_") and len(prefix) == 8
    assert api_key_prefix(key) == prefix
    assert api_key_prefix("dlk_short_x") is None and api_key_prefix("garbage") is None


def test_wrapped_key_unwraps_only_with_the_same_secret_and_row():
    data_key = new_data_key()
    wrapped = wrap_key(data_key, "s3cret-wrapping", "row-1")
    assert data_key.hex() not in wrapped and data_key not in wrapped.encode()
    assert unwrap_key(wrapped, "s3cret-wrapping", "row-1") == data_key
    with pytest.raises(ValidationError):
        unwrap_key(wrapped, "another-secret", "row-1")
    with pytest.raises(ValidationError):
        unwrap_key(wrapped, "s3cret-wrapping", "row-2")


def test_wrapping_without_a_secret_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="DATALAYER_KEY_WRAPPING_SECRET"):
        wrap_key(os.urandom(32), None, "row")
