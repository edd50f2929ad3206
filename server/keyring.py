"""The keyring: key-encryption keys (versioned), the blind-index key, the audit signing key.

A JSON file (mode 0600; refused when group or others can read it). Data keys are wrapped by
a `KeyProvider`: the local one uses the keyring's AES-256 KEKs; a cloud KMS can be plugged in
by implementing the same two methods. Only `server/records/crypto.py` wraps and unwraps; the
audit sealer reads the signing key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.config import get_settings
from server.errors import ServiceUnavailable

KEYRING_VERSION = 1


class KeyringError(ServiceUnavailable):
    """The keyring is missing, unreadable, too open, or cannot open this data key."""

    code = "keyring_error"


class KeyProvider(Protocol):
    """Wraps and unwraps data keys; a cloud KMS implements the same two calls."""

    def wrap(self, data_key: bytes, *, aad: bytes) -> tuple[str, bytes]:
        """Wrap `data_key` under the primary key; returns (key id, wrapped bytes)."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
        """Unwrap a data key wrapped by key `kek_id`."""
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


@dataclass
class LocalKeyProvider:
    """AES-256-GCM key wrapping with the keyring's own KEKs."""

    keks: dict[str, bytes]
    primary: str

    def wrap(self, data_key: bytes, *, aad: bytes) -> tuple[str, bytes]:
        """Wrap under the primary KEK: nonce (12 bytes) || ciphertext+tag."""
        nonce = secrets.token_bytes(12)
        return self.primary, nonce + AESGCM(self.keks[self.primary]).encrypt(nonce, data_key, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
        """Unwrap with the named KEK, or KeyringError (never garbage)."""
        kek = self.keks.get(kek_id)
        if kek is None:
            raise KeyringError(f"The keyring has no key {kek_id}; is this the right keyring?")
        try:
            return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], aad)
        except InvalidTag:
            raise KeyringError(
                "A data key failed to unwrap: wrong keyring, or the stored key was altered."
            ) from None


@dataclass
class AwsKmsProvider:
    """Data keys wrapped by an AWS KMS key; the associated data travels as encryption context.

    Keys wrapped earlier by the local KEKs keep opening locally, so `chartdesk keys rotate`
    after setting CHARTDESK_KMS_KEY_ID moves every data key to KMS.
    """

    key_id: str
    local: LocalKeyProvider
    endpoint_url: str | None = None
    region: str = "us-east-1"
    _client: Any = None

    PREFIX = "kms:"

    def client(self) -> Any:
        """A boto3 KMS client (boto3 is the optional `kms` extra)."""
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise KeyringError(
                    "CHARTDESK_KMS_KEY_ID is set but boto3 is not installed; "
                    "install chartdesk[kms]."
                ) from None
            self._client = boto3.client(
                "kms", endpoint_url=self.endpoint_url, region_name=self.region
            )
        return self._client

    def wrap(self, data_key: bytes, *, aad: bytes) -> tuple[str, bytes]:
        """Encrypt the data key under the KMS key."""
        out = self.client().encrypt(
            KeyId=self.key_id, Plaintext=data_key, EncryptionContext={"chartdesk": aad.decode()}
        )
        return self.PREFIX + self.key_id, bytes(out["CiphertextBlob"])

    def unwrap(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
        """Decrypt through KMS (or locally for keys still wrapped by a local KEK)."""
        if not kek_id.startswith(self.PREFIX):
            return self.local.unwrap(kek_id, wrapped, aad=aad)
        client = self.client()
        try:
            out = client.decrypt(
                CiphertextBlob=wrapped,
                KeyId=kek_id[len(self.PREFIX) :],
                EncryptionContext={"chartdesk": aad.decode()},
            )
        except client.exceptions.InvalidCiphertextException:
            raise KeyringError(
                "KMS refused to unwrap a data key: wrong key, or the stored key was altered."
            ) from None
        return bytes(out["Plaintext"])


@dataclass
class Keyring:
    """Loaded key material. Never logged, never rendered."""

    path: Path
    demo: bool
    primary_kek_id: str
    keks: dict[str, bytes]
    index_key: bytes
    audit_signing_key: Ed25519PrivateKey
    provider: KeyProvider = field(init=False)

    def __post_init__(self) -> None:
        local = LocalKeyProvider(keks=self.keks, primary=self.primary_kek_id)
        settings = get_settings()
        self.provider = local
        if settings.kms_key_id:
            self.provider = AwsKmsProvider(
                key_id=settings.kms_key_id,
                local=local,
                endpoint_url=settings.kms_endpoint_url,
                region=settings.kms_region,
            )

    @property
    def primary_wrapping_id(self) -> str:
        """The key id new data keys are wrapped under (a local KEK or `kms:<key id>`)."""
        if isinstance(self.provider, AwsKmsProvider):
            return AwsKmsProvider.PREFIX + self.provider.key_id
        return self.primary_kek_id

    @property
    def kek_ids(self) -> list[str]:
        """Every KEK version the keyring holds (oldest first)."""
        return sorted(self.keks)

    @property
    def audit_public_key(self) -> Ed25519PublicKey:
        """The public half of the audit signing key (for verification)."""
        return self.audit_signing_key.public_key()

    def wrap_data_key(self, data_key: bytes, *, aad: bytes) -> tuple[str, bytes]:
        """Wrap a data key under the primary KEK."""
        return self.provider.wrap(data_key, aad=aad)

    def unwrap_data_key(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
        """Unwrap a data key (any KEK version still in the keyring)."""
        return self.provider.unwrap(kek_id, wrapped, aad=aad)

    def blind_index(self, value: str) -> str:
        """HMAC-SHA256 (hex) under the separate index key; callers normalise `value` first."""
        return hmac.new(self.index_key, value.encode(), hashlib.sha256).hexdigest()


def normalise_mrn(mrn: str) -> str:
    """The MRN as indexed: trimmed, upper case, inner spaces removed."""
    return "".join(mrn.split()).upper()


def mrn_index(mrn: str, *, keyring: Keyring | None = None) -> str:
    """The blind index of an MRN (HMAC-SHA256 under the keyring's separate index key)."""
    return (keyring or load_keyring()).blind_index(normalise_mrn(mrn))


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(
            f"Keyring file {path} can be read by group or others (mode {oct(mode & 0o777)}); "
            "run `chmod 600` on it."
        )


def _parse(path: Path, data: dict[str, Any]) -> Keyring:
    try:
        keks = {kid: _unb64(k) for kid, k in data["keks"].items()}
        ring = Keyring(
            path=path,
            demo=bool(data.get("demo", False)),
            primary_kek_id=data["primary_kek"],
            keks=keks,
            index_key=_unb64(data["index_key"]),
            audit_signing_key=Ed25519PrivateKey.from_private_bytes(
                _unb64(data["audit_signing_key"])
            ),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyringError(f"Keyring file {path} is malformed ({type(exc).__name__}).") from None
    if ring.primary_kek_id not in keks or any(len(k) != 32 for k in keks.values()):
        raise KeyringError(f"Keyring file {path} is malformed (bad key-encryption keys).")
    return ring


_cache: dict[tuple[str, int], Keyring] = {}


def keyring_path(path: Path | None = None) -> Path:
    """The configured keyring path, or KeyringError if none is set."""
    path = path or get_settings().keyring_file
    if path is None:
        raise KeyringError("No keyring configured: set CHARTDESK_KEYRING_FILE.")
    return Path(path)


def load_keyring(path: Path | None = None) -> Keyring:
    """Load (and cache, until the file changes) the keyring; checks mode and environment."""
    path = keyring_path(path)
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise KeyringError(
            f"Keyring file {path} does not exist; create it with `chartdesk keys init`."
        ) from None
    cached = _cache.get((str(path), mtime))
    if cached is None:
        _check_mode(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise KeyringError(f"Keyring file {path} cannot be read as JSON.") from None
        cached = _parse(path, data)
        _cache.clear()
        _cache[(str(path), mtime)] = cached
    if cached.demo and get_settings().production:
        raise KeyringError("This is a demo keyring; production mode refuses it.")
    return cached


def _new_kek_id(existing: dict[str, Any]) -> str:
    return f"kek-{datetime.now(UTC).strftime('%Y%m%d')}-{len(existing) + 1}"


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace the keyring file, created with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def init_keyring(path: Path | None = None, *, demo: bool = False) -> Path:
    """Create a new keyring file; refuses to overwrite an existing one."""
    path = keyring_path(path)
    if path.exists():
        raise KeyringError(f"Keyring file {path} already exists; refusing to overwrite it.")
    keks: dict[str, str] = {}
    kek_id = _new_kek_id(keks)
    keks[kek_id] = _b64(secrets.token_bytes(32))
    signing = Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization

    raw = signing.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    _write(
        path,
        {
            "version": KEYRING_VERSION,
            "demo": demo,
            "created_at": datetime.now(UTC).isoformat(),
            "primary_kek": kek_id,
            "keks": keks,
            "index_key": _b64(secrets.token_bytes(32)),
            "audit_signing_key": _b64(raw),
        },
    )
    return path


def add_kek(path: Path | None = None) -> str:
    """Add a new KEK version and make it primary (rotation step one); returns its id."""
    path = keyring_path(path)
    load_keyring(path)  # validates mode and content
    data = json.loads(path.read_text())
    kek_id = _new_kek_id(data["keks"])
    while kek_id in data["keks"]:
        kek_id += "b"
    data["keks"][kek_id] = _b64(secrets.token_bytes(32))
    data["primary_kek"] = kek_id
    _write(path, data)
    return kek_id
