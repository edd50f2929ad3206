"""argon2id password hashing and RFC 6238 TOTP."""

from __future__ import annotations

import io
import secrets
import time

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

TOTP_ISSUER = "Chartdesk"


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; spends the same time when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password for a new account."""
    return secrets.token_urlsafe(15)


def new_totp_secret() -> str:
    """A new base32 TOTP secret."""
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def totp_qr(uri: str) -> str:
    """The otpauth:// URI as a QR code, an SVG data URI for an <img> (CSP allows data: images)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=4, border=2))


def totp_qr_terminal(uri: str) -> str:
    """The otpauth:// URI as a QR code drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(uri, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def current_totp(secret: str) -> str:
    """The code for now (demo sign-in page and tests)."""
    return pyotp.TOTP(secret).now()


def match_totp(secret: str | None, code: str, last_counter: int | None) -> int | None:
    """The time step `code` is valid for (±1 step of drift), or None.

    A code whose step is not after `last_counter` is refused, so an overheard code
    cannot be replayed.
    """
    if not secret or not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now_counter = int(time.time()) // totp.interval
    for counter in (now_counter, now_counter - 1, now_counter + 1):
        if secrets.compare_digest(totp.generate_otp(counter), code):
            if last_counter is not None and counter <= last_counter:
                return None
            return counter
    return None
