"""Secrets: generation and hashing of tokens, keys and passwords."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "API_KEY_PREFIX",
    "DEVICE_TOKEN_PREFIX",
    "ENROLLMENT_TOKEN_PREFIX",
    "SESSION_PREFIX",
    "hash_password",
    "hash_token",
    "new_token",
    "verify_password",
]

ENROLLMENT_TOKEN_PREFIX = "dxe_"
DEVICE_TOKEN_PREFIX = "dxd_"
API_KEY_PREFIX = "dxk_"
SESSION_PREFIX = "dxs_"

_TOKEN_BYTES = 32  # 256 bits of entropy, well above the 128-bit floor
_hasher = PasswordHasher()


def new_token(prefix: str) -> str:
    """A new random secret with a readable prefix telling what it is."""
    return prefix + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a high-entropy token (SHA-256 hex).

    Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    Passwords, which are low-entropy, use :func:`hash_password` instead.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False on any malformed hash)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
