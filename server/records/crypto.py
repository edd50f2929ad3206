"""Envelope encryption of encounters: per-encounter data keys, AES-256-GCM, bound ciphertexts.

Each encounter gets its own random 256-bit data key. Its fields and documents are sealed
with AES-256-GCM under a fresh 96-bit nonce, with associated data naming the row, the field
and the data key (`"encounter:42:patient:key:7:v1"`), so a ciphertext copied to another row
or field fails to open instead of showing the wrong patient. The data key is stored only
wrapped by the keyring's primary key-encryption key (associated data `"data_key:7:v1"`).

Only `server/records/service.py` imports this module: it is the one door to plaintext.

Benchmark only: with CHARTDESK_BENCH_NULL_CIPHER=1 (development only; the settings refuse
it in production) new values are stored unencrypted with format byte 0x00 and data keys
unwrapped, so `make bench` can compare the endpoint with and without the cipher. A normal
server refuses to open such a value (SealBroken), so it can never pass for a sealed one.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.config import get_settings
from server.errors import AppError
from server.keyring import Keyring

FORMAT = b"\x01"  # first byte of every sealed value: the format version
AAD_VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
NULL_FORMAT = b"\x00"  # benchmark only: the value is stored as is
NULL_KEK = "bench-null"  # benchmark only: the data key is stored unwrapped


class SealBroken(AppError):
    """A sealed value failed its integrity check (moved, altered, or the wrong key)."""

    status_code = 500
    code = "record_integrity"


class RecordPurged(AppError):
    """The encounter's data key was destroyed (crypto-shredded); its content is gone."""

    status_code = 410
    code = "record_purged"


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return secrets.token_bytes(KEY_BYTES)


def wrap_aad(data_key_id: int) -> bytes:
    """Associated data binding a wrapped data key to its own row."""
    return f"data_key:{data_key_id}:{AAD_VERSION}".encode()


def field_aad(table: str, row_id: int, field: str, *, data_key_id: int) -> bytes:
    """Associated data binding a ciphertext to its row, field and data key."""
    return f"{table}:{row_id}:{field}:key:{data_key_id}:{AAD_VERSION}".encode()


def _null_cipher() -> bool:
    """Whether the benchmark's null cipher is on (development only, see the module doc)."""
    settings = get_settings()
    return settings.bench_null_cipher and not settings.production


def wrap(keyring: Keyring, data_key: bytes, *, data_key_id: int) -> tuple[str, bytes]:
    """Wrap a data key under the primary KEK; returns (KEK id, wrapped bytes)."""
    if _null_cipher():
        return NULL_KEK, data_key
    return keyring.wrap_data_key(data_key, aad=wrap_aad(data_key_id))


def unwrap(keyring: Keyring, *, data_key_id: int, kek_id: str, wrapped: bytes | None) -> bytes:
    """The plaintext data key, RecordPurged if it was destroyed, KeyringError if unusable."""
    if wrapped is None:
        raise RecordPurged("This record was purged: its encryption key was destroyed.")
    if kek_id == NULL_KEK and _null_cipher():
        return wrapped
    return keyring.unwrap_data_key(kek_id, wrapped, aad=wrap_aad(data_key_id))


def seal(data_key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """AES-256-GCM: format byte || 96-bit random nonce || ciphertext and tag."""
    if _null_cipher():
        return NULL_FORMAT + plaintext
    nonce = secrets.token_bytes(NONCE_BYTES)
    return FORMAT + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)


def open_sealed(data_key: bytes, sealed: bytes, *, aad: bytes) -> bytes:
    """Open a sealed value, or SealBroken (never garbage, never the plaintext of another row)."""
    if sealed[:1] == NULL_FORMAT and _null_cipher():
        return sealed[1:]
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != FORMAT:
        raise SealBroken("A stored record is damaged and cannot be opened.")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise SealBroken(
            "A stored record failed its integrity check (altered, moved to another row, "
            "or sealed under another key) and cannot be opened."
        ) from None
