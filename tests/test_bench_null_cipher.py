"""The benchmark's null cipher switch can never weaken a real deployment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import Settings, get_settings
from server.records import crypto


def test_null_cipher_switch_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTDESK_BENCH_NULL_CIPHER", "1")
    monkeypatch.setenv("CHARTDESK_ENV", "production")
    with pytest.raises(ValidationError, match="refused in production"):
        Settings()


def test_value_stored_by_a_null_cipher_bench_server_is_refused_by_a_normal_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, aad = crypto.new_data_key(), b"encounter:1:patient:key:1:v1"
    monkeypatch.setenv("CHARTDESK_ENV", "development")
    monkeypatch.setenv("CHARTDESK_BENCH_NULL_CIPHER", "1")
    get_settings.cache_clear()
    stored = crypto.seal(key, b"Marisol Quintero-Haas", aad=aad)
    assert crypto.open_sealed(key, stored, aad=aad) == b"Marisol Quintero-Haas"

    monkeypatch.delenv("CHARTDESK_BENCH_NULL_CIPHER")
    get_settings.cache_clear()
    with pytest.raises(crypto.SealBroken):
        crypto.open_sealed(key, stored, aad=aad)
    sealed = crypto.seal(key, b"Marisol Quintero-Haas", aad=aad)
    assert b"Marisol" not in sealed
    assert crypto.open_sealed(key, sealed, aad=aad) == b"Marisol Quintero-Haas"
