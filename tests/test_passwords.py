"""The production password hasher: argon2id at RFC 9106's low-memory parameters.

The rest of the suite hashes with a cheap argon2id (tests/conftest.py); this test puts the
real hasher back and checks what production stores and how it verifies.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from server.auth import passwords

PRODUCTION_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


def test_production_hashes_are_argon2id_64mib_3_passes_4_lanes(
    production_hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert production_hasher is not passwords._hasher  # the suite's cheap one is in place
    monkeypatch.setattr(passwords, "_hasher", production_hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", production_hasher.hash("dummy"))

    stored = passwords.hash_password("correct horse battery staple")
    assert stored.startswith(PRODUCTION_PREFIX)
    assert passwords.verify_password(stored, "correct horse battery staple")
    assert not passwords.verify_password(stored, "correct horse battery stapler")
    # An unknown user is checked against a dummy hash of the same cost, and refused.
    assert not passwords.verify_password(None, "correct horse battery staple")


def test_the_module_dummy_hash_has_the_production_cost() -> None:
    """Unknown usernames must cost what a real check costs (no user enumeration by timing)."""
    import importlib.util

    spec = importlib.util.find_spec("server.auth.passwords")
    assert spec is not None
    assert spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)  # a private copy: the suite's patched module is untouched
    assert fresh._DUMMY_HASH.startswith(PRODUCTION_PREFIX)
    assert fresh.hash_password("x").startswith(PRODUCTION_PREFIX)
